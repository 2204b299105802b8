@_exported import GenTensor
