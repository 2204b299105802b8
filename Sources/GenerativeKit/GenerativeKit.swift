// One name to import for the whole toolkit: `import GenerativeKit` brings in every library module.
// The modules themselves import what they use explicitly; nothing else re-exports.
@_exported import GenTensor
@_exported import GenFormats
@_exported import GenNN
@_exported import GenModels
@_exported import GenData
@_exported import GenEval
@_exported import GenTrain
