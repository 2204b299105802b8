@_exported import GenTensor
@_exported import GenFormats
