import ArgumentParser
import Foundation

/// Older spellings of flags, still accepted for one release: one meaning per flag name across the
/// commands (`--steps` is a sampler's steps, `--max-steps` training's length, `--frames` an
/// interpolation's points; `--init-from FILE` and `--init-scheme NAME`; `--batch-size` everywhere).
enum DeprecatedFlag {
    /// The value of a flag given under its new name or its old one (with a warning on stderr from
    /// `check`); both at once is an error.
    static func merge<T>(_ current: T?, _ old: T?) -> T? { current ?? old }

    /// Refuses both spellings at once, and warns on stderr when the old one is used.
    static func check<T>(_ current: T?, _ currentName: String, old: T?, _ oldName: String) throws {
        guard old != nil else { return }
        if current != nil { throw ValidationError("\(oldName) is the older spelling of \(currentName); give only \(currentName)") }
        logLine("warning: \(oldName) is deprecated and goes in the next release; use \(currentName)")
    }
}
