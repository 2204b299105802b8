@_exported import GenEval
