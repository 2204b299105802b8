@_exported import GenModels
@_exported import GenData
