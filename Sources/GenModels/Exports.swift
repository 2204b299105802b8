@_exported import GenNN
