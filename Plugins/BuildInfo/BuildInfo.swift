import Foundation
import PackagePlugin

/// Records the source commit in the target it is applied to, as `buildCommit` ("abcdef0", with
/// "-dirty" when tracked files differ from it, or "unknown" outside a git checkout), for
/// `generative --version` and the checkpoints' `generative_version`.
///
/// A prebuild command (it runs before every build): a shell script asks git, and rewrites
/// `BuildCommit.swift` only when its text changes, so an unchanged tree recompiles nothing.
@main
struct BuildInfo: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let output = context.pluginWorkDirectoryURL.appendingPathComponent("BuildCommit")
        let script = #"""
            out="$1"; root="$2"
            mkdir -p "$out"
            commit=$(git -C "$root" rev-parse --short=7 HEAD 2>/dev/null) || commit=unknown
            if [ "$commit" != unknown ] && ! git -C "$root" diff --quiet HEAD -- 2>/dev/null; then commit="$commit-dirty"; fi
            text="/// The source commit of this build (written by the BuildInfo plugin).
            public let buildCommit = \"$commit\""
            file="$out/BuildCommit.swift"
            [ -f "$file" ] && [ "$(cat "$file")" = "$text" ] || printf '%s\n' "$text" > "$file"
            """#
        return [.prebuildCommand(displayName: "Recording the source commit",
                                 executable: URL(fileURLWithPath: "/bin/sh"),
                                 arguments: ["-c", script, "build-info", output.path, context.package.directoryURL.path],
                                 outputFilesDirectory: output)]
    }
}
