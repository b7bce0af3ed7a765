import Foundation

/// A session's working directory as git sees it: the branch and HEAD when the session starts,
/// and at its end the changed files and the diff (staged and unstaged), size-capped.
public enum GitSnapshot {
    /// Branch and HEAD of the repository at `cwd`; nil when it is not a git repository (or
    /// git is not installed).
    public static func head(cwd: String) -> (branch: String?, head: String?)? {
        guard let top = git(["rev-parse", "--show-toplevel"], cwd: cwd), !top.output.isEmpty else { return nil }
        let branch = git(["rev-parse", "--abbrev-ref", "HEAD"], cwd: cwd).map { trimmed($0.output) }
        let head = git(["rev-parse", "HEAD"], cwd: cwd).map { trimmed($0.output) }
        return (branch.flatMap { $0.isEmpty ? nil : $0 }, head.flatMap { $0.isEmpty ? nil : $0 })
    }

    /// What changed: `git status --porcelain` lines, and the staged then unstaged diff, each
    /// cut at `limit` bytes (`truncated` says so). Nil outside a repository.
    public static func changes(cwd: String, limit: Int = 1 << 20) -> (
        status: [UInt8], diff: [UInt8], truncated: Bool
    )? {
        guard let status = git(["status", "--porcelain=v1", "--untracked-files=all"], cwd: cwd) else { return nil }
        var diff = Array("# staged (git diff --cached)\n".utf8)
        diff += git(["diff", "--cached", "--no-color", "--no-ext-diff"], cwd: cwd)?.output ?? []
        diff += Array("\n# unstaged (git diff)\n".utf8)
        diff += git(["diff", "--no-color", "--no-ext-diff"], cwd: cwd)?.output ?? []
        let truncated = diff.count > limit || status.output.count > limit
        return (Array(status.output.prefix(limit)), Array(diff.prefix(limit)), truncated)
    }

    private static func trimmed(_ bytes: [UInt8]) -> String {
        String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs git; nil when it fails to run or exits non-zero.
    private static func git(_ arguments: [String], cwd: String) -> (output: [UInt8], status: Int32)? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["git", "-C", cwd] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["GIT_OPTIONAL_LOCKS"] = "0"
        environment["GIT_PAGER"] = "cat"
        process.environment = environment
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        process.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        do { try process.run() } catch { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        return ([UInt8](data), 0)
    }
}
