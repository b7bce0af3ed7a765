import Crypto
import Foundation
import SpendwallTokenizer

/// Finds, verifies and installs the rank files of the BPE encodings.
///
/// Looked for, in order: `tokenizers/` in Spendwall's data dir (`<name>.tiktoken`), then
/// tiktoken's caches (`$TIKTOKEN_CACHE_DIR`, `$DATA_GYM_CACHE_DIR`, `$TMPDIR/data-gym-cache`),
/// where tiktoken names a file by the SHA-1 hex digest of its download address. A file is used
/// only when its SHA-256 is the one tiktoken pins.
public struct RankFileStore: Sendable {
    /// Where `install` puts the files: `$SPENDWALL_DATA_DIR/tokenizers`.
    public var directory: String
    /// tiktoken's cache directories, in the order they are searched.
    public var cacheDirectories: [String]

    public init(directory: String, cacheDirectories: [String]) {
        self.directory = directory
        self.cacheDirectories = cacheDirectories
    }

    /// The store of a data dir, with tiktoken's caches as `environment` names them.
    public init(dataDirectory: String, environment: [String: String]) {
        self.init(
            directory: dataDirectory + "/tokenizers", cacheDirectories: Self.tiktokenCacheDirectories(environment))
    }

    /// tiktoken's cache directories: `$TIKTOKEN_CACHE_DIR`, `$DATA_GYM_CACHE_DIR`, and the
    /// default `data-gym-cache` in the temporary directory (`$TMPDIR`, `$TEMP`, `$TMP`, `/tmp`,
    /// as Python's `tempfile.gettempdir()` picks it). tiktoken itself reads only the first
    /// that is set; Spendwall looks in each. An empty `TIKTOKEN_CACHE_DIR` (tiktoken: no cache)
    /// is skipped.
    public static func tiktokenCacheDirectories(_ environment: [String: String]) -> [String] {
        var directories: [String] = []
        for key in ["TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"] {
            if let value = environment[key], !value.isEmpty { directories.append(value) }
        }
        let temporary =
            ["TMPDIR", "TEMP", "TMP"].lazy.compactMap { environment[$0] }.first { !$0.isEmpty } ?? "/tmp"
        directories.append(temporary + "/data-gym-cache")
        var seen = Set<String>()
        return directories.filter { seen.insert($0).inserted }
    }

    /// The file name tiktoken's cache gives an encoding: the SHA-1 hex of its download address.
    public static func tiktokenCacheKey(_ name: EncodingName) -> String {
        hex(Insecure.SHA1.hash(data: Data(name.downloadURL.utf8)))
    }

    /// The paths searched for an encoding, in order.
    public func searchPaths(_ name: EncodingName) -> [String] {
        [directory + "/" + name.fileName] + cacheDirectories.map { $0 + "/" + Self.tiktokenCacheKey(name) }
    }

    /// What was found for one encoding.
    public struct Status: Sendable {
        public var name: EncodingName
        /// The first file with the pinned hash, if any.
        public var path: String?
        /// Files found with another hash (or unreadable), with why.
        public var problems: [String]
    }

    /// Searches for an encoding's rank file and checks its hash (without parsing it).
    public func status(_ name: EncodingName) -> Status {
        var problems: [String] = []
        for path in searchPaths(name) where FileManager.default.fileExists(atPath: path) {
            do {
                _ = try Self.verifiedContents(path, name)
                return Status(name: name, path: path, problems: problems)
            } catch {
                problems.append(String(describing: error))
            }
        }
        return Status(name: name, path: nil, problems: problems)
    }

    /// Loads an encoding from the first verified rank file; the error says what to run.
    public func load(_ name: EncodingName) throws -> Encoding {
        var problems: [String] = []
        for path in searchPaths(name) where FileManager.default.fileExists(atPath: path) {
            do {
                let contents = try Self.verifiedContents(path, name)
                do {
                    return try Encoding(name: name, rankFile: contents)
                } catch {
                    throw TokenizerError(.malformed, "\(path): \(error)")
                }
            } catch {
                problems.append(String(describing: error))
            }
        }
        if problems.isEmpty {
            throw TokenizerError(
                .missing,
                "no rank file for \(name) (looked for \(searchPaths(name).joined(separator: ", "))); "
                    + "run `spendwall tokenizer install --from FILE|DIR` with a downloaded \(name.fileName), "
                    + "a tiktoken cache or the bpe-openai Python package")
        }
        throw TokenizerError(
            .hashMismatch,
            problems.joined(separator: "; ") + "; run `spendwall tokenizer install --from FILE|DIR` to replace it")
    }

    /// A file's contents when its SHA-256 is the encoding's pinned one.
    static func verifiedContents(_ path: String, _ name: EncodingName) throws -> [UInt8] {
        let contents = try read(path)
        let digest = sha256(contents)
        guard digest == name.sha256 else {
            throw TokenizerError(
                .hashMismatch,
                "\(path) is not the \(name) rank file tiktoken pins (SHA-256 \(digest), expected \(name.sha256))")
        }
        return contents
    }

    static func read(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TokenizerError(.io, "cannot read \(path)")
        }
        return [UInt8](data)
    }

    static func sha256(_ bytes: [UInt8]) -> String { hex(SHA256.hash(data: bytes)) }

    private static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        digest.map { String(format: "%02x", $0) }.joined()
    }
}
