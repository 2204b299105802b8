import ArgumentParser
import Foundation
import GenTensor
import GenFormats
import GenData

/// Images (N, H, W, C) in [0, 1] from a path a flag names: a folder of PNGs (resized to
/// `imageSize` when they differ), one PNG, a .npy, or an IDX file. Errors name the flag and the file.
func readImageInput(_ path: String, flag: String, imageSize: Int = 28) throws -> Tensor {
    let url = URL(fileURLWithPath: path)
    var isFolder: ObjCBool = false
    guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder) else { throw ValidationError("\(flag) \(path): no such file or folder") }
    do {
        if isFolder.boolValue { return try ImageDataset.load(directory: url, split: .test, imageSize: imageSize).images }
        if url.pathExtension.lowercased() == "png" {
            let image = try PNGReader.readGray(url)
            return image.reshaped([1] + Array(image.shape.prefix(2)) + [1])
        }
        if url.pathExtension.lowercased() == "npy" { return try NPY.readImages(url) }
        let raw = try IDX.readImages(url)
        guard raw.dimensions.count == 3, raw.dimensions[0] > 0 else { throw ValidationError("\(flag) \(path): not an IDX file of images") }
        let (count, height, width) = (raw.dimensions[0], raw.dimensions[1], raw.dimensions[2])
        return Tensor(raw.bytes.map { Float($0) / 255 }, shape: [count, height, width, 1])
    } catch let error as DataError {
        throw ValidationError("\(flag) \(error.path): \(error.problem)")
    }
}
