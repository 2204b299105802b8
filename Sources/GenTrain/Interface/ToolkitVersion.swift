import GenTensor

/// The toolkit's version: its number, the source commit it was built from (see the BuildInfo
/// plugin) and the oneDNN library it runs on. `generative --version` prints `line`, and every
/// checkpoint the training loop writes stores it as `generative_version`.
public enum ToolkitVersion {
    /// The release number, raised with each release of the command line.
    public static let number = "0.14.0"
    /// The source commit ("abcdef0", "abcdef0-dirty" or "unknown").
    public static var commit: String { buildCommit }
    /// `generative X.Y.Z (commit abcdef0, oneDNN vA.B.C)`.
    public static var line: String { "generative \(number) (commit \(commit), oneDNN v\(CPUBackend.oneDNNVersion))" }
}
