import ArgumentParser
import Foundation
import GenTrain
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval
import GenDistributed

/// The help of `--resume`, naming the settings that may change when a run resumes.
func resumeHelp(_ changeable: String) -> ArgumentHelp {
    ArgumentHelp("Continue from the run folder's checkpoint. Only \(changeable) may differ from the stored run; "
                 + "a change of model, architecture, loss, batch size, learning rate or seed is refused.")
}

let overwriteHelp = ArgumentHelp("Start afresh in a run folder that already holds a checkpoint, replacing it.")

/// Refuses `--resume` with `--overwrite`.
func validateRunFlags(resume: Bool, overwrite: Bool) throws {
    if resume && overwrite { throw ValidationError("--resume and --overwrite exclude each other: continue the run or replace it") }
}

/// Opens a run folder for training: takes its lock (refused while another process trains into
/// it), and refuses to replace a checkpoint there unless `resume` or `overwrite`. The caller keeps
/// the lock until training ends.
func openRun(_ path: String, resume: Bool, overwrite: Bool) throws -> (run: RunDirectory, lock: RunLock) {
    let run = RunDirectory(URL(fileURLWithPath: path))
    let lock = try RunLock(folder: run.url)
    // Holding the lock, nobody else writes here: a killed save's temporary files are orphans.
    let orphans = AtomicFile.removeOrphans(in: run.url)
    if !orphans.isEmpty {
        logLine("removed \(orphans.count) temporary file(s) a killed save left in \(run.url.path): \(orphans.joined(separator: ", "))")
    }
    if !resume && !overwrite && FileManager.default.fileExists(atPath: run.checkpoint.path) {
        lock.release()
        throw ValidationError("\(run.checkpoint.path) already exists: pass --resume to continue that run, or --overwrite to replace it")
    }
    return (run, lock)
}

/// Whether two paths name the same file: the same inode when both exist, else the same path once
/// links and `..` are resolved.
func sameFile(_ a: String, _ b: String) -> Bool {
    var first = stat(), second = stat()
    if stat(a, &first) == 0, stat(b, &second) == 0 { return first.st_dev == second.st_dev && first.st_ino == second.st_ino }
    func resolved(_ path: String) -> String { URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path }
    return resolved(a) == resolved(b)
}

/// Loads a split of `--data`, or Fashion-MNIST from the Debian package.
func loadDataset(_ path: String?, split: DatasetSplit) throws -> ImageDataset {
    if let path { return try ImageDataset.load(directory: URL(fileURLWithPath: path), split: split) }
    return try ImageDataset.fashionMNIST(split: split)
}

/// Refuses an image output path that is neither a `.png`, a `.npy` nor a folder (no extension, or
/// a folder that exists), so that `samples.jpg` is an error rather than a folder of that name.
func validateImageOutput(_ path: String, flag: String = "--out") throws {
    let ext = URL(fileURLWithPath: path).pathExtension.lowercased()
    var isFolder: ObjCBool = false
    guard ext.isEmpty || ext == "png" || ext == "npy"
            || (FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) && isFolder.boolValue) else {
        throw ValidationError("\(flag) \(path): unknown extension .\(ext); use .png (a grid), .npy (an array) or a folder (no extension)")
    }
}

/// Writes images (N, 28, 28, 1) in [0, 1] to PATH: a `.png` grid, a `.npy` array (N x 28 x 28
/// float32) or a folder with one PNG per image.
func writeImages(_ images: Tensor, to path: String) throws -> String {
    try validateImageOutput(path)
    let url = URL(fileURLWithPath: path)
    switch url.pathExtension.lowercased() {
    case "png":
        let columns = Int(Double(images.shape[0]).squareRoot().rounded(.up))
        try PNGWriter.write(imageGrid(images, columns: max(columns, 1)), to: url)
        return "grid of \(images.shape[0]) images in \(url.path)"
    case "npy":
        try NPY.writeImages(images, to: url)
        return "\(images.shape[0]) images as \(url.path) (N x \(images.shape[1]) x \(images.shape[2]) float32 in [0, 1])"
    default:
        _ = try ImageFolderWriter.write(images, to: url)
        return "\(images.shape[0]) PNG files in \(url.path)/"
    }
}

/// A log line on stderr: progress and logs go there, results (paths, tables, JSON) to stdout.
func logLine(_ line: String) {
    // Under mpirun, rank 0 speaks for the job.
    if let world = try? Communicator.world, !world.isRoot { return }
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
