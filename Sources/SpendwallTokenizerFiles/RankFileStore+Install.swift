import CompressNIO
import Foundation
import NIOCore
import SpendwallTokenizer

extension RankFileStore {
    /// One rank file copied into the store.
    public struct Installed: Sendable {
        public var name: EncodingName
        public var source: String
        public var destination: String
    }

    /// Copies the rank files found at `source` into ``directory``, after checking each file's
    /// SHA-256 against the pinned one.
    ///
    /// `source` is a rank file (`.tiktoken`, or gzip-compressed as the `bpe-openai` wheel ships
    /// it; which encoding it is comes from its hash) or a directory: a folder of
    /// `<name>.tiktoken[.gz]` files, a tiktoken cache, or a Python package (`bpe_openai/`, its
    /// `data/`, or the `site-packages` holding it). Without a source, tiktoken's caches and the
    /// `bpe_openai` package of `python3` on the PATH are searched.
    public func install(from source: String?) throws -> [Installed] {
        var found: [(EncodingName, String, [UInt8])] = []
        if let source {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: source, isDirectory: &isDirectory) else {
                throw TokenizerError(.io, "\(source): no such file or directory")
            }
            if isDirectory.boolValue {
                found = try Self.rankFiles(inDirectory: source)
                guard !found.isEmpty else {
                    throw TokenizerError(
                        .missing,
                        "\(source) holds no rank file: looked in it, its data/ and bpe_openai/data/ for "
                            + "<name>.tiktoken, <name>.tiktoken.gz and tiktoken's cache names")
                }
            } else {
                let contents = try Self.uncompressed(Self.read(source), path: source)
                let digest = Self.sha256(contents)
                guard let name = EncodingName.allCases.first(where: { $0.sha256 == digest }) else {
                    throw TokenizerError(
                        .hashMismatch,
                        "\(source) is not a rank file tiktoken pins (SHA-256 \(digest); expected "
                            + EncodingName.allCases.map { "\($0): \($0.sha256)" }.joined(separator: ", ") + ")")
                }
                found = [(name, source, contents)]
            }
        } else {
            for directory in cacheDirectories + [Self.pythonPackageDirectory()].compactMap({ $0 }) {
                for file in try Self.rankFiles(inDirectory: directory) where !found.contains(where: { $0.0 == file.0 })
                {
                    found.append(file)
                }
            }
            guard !found.isEmpty else {
                throw TokenizerError(
                    .missing,
                    "found no rank file in tiktoken's caches (\(cacheDirectories.joined(separator: ", "))) "
                        + "nor a bpe_openai Python package; give one with --from FILE|DIR "
                        + "(`pip install bpe-openai` ships both encodings)")
            }
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw TokenizerError(.io, "cannot create \(directory): \(error.localizedDescription)")
        }
        return try found.map { name, source, contents in
            let destination = directory + "/" + name.fileName
            let temporary = destination + ".tmp-\(getpid())"
            guard FileManager.default.createFile(atPath: temporary, contents: Data(contents)) else {
                throw TokenizerError(.io, "cannot write \(temporary)")
            }
            guard rename(temporary, destination) == 0 else {
                unlink(temporary)
                throw TokenizerError(.io, "cannot move \(temporary) to \(destination)")
            }
            return Installed(name: name, source: source, destination: destination)
        }
    }

    /// Where a directory may hold an encoding's rank file.
    static func directoryCandidates(_ directory: String, _ name: EncodingName) -> [String] {
        let files = [name.fileName, name.fileName + ".gz", tiktokenCacheKey(name)]
        return ["", "/data", "/bpe_openai/data"].flatMap { sub in files.map { directory + sub + "/" + $0 } }
    }

    /// The verified rank files in a directory, first candidate with the right hash per encoding.
    /// A candidate with another hash is an error (it would otherwise be skipped silently).
    static func rankFiles(inDirectory directory: String) throws -> [(EncodingName, String, [UInt8])] {
        var found: [(EncodingName, String, [UInt8])] = []
        var problems: [String] = []
        for name in EncodingName.allCases {
            for path in directoryCandidates(directory, name) where FileManager.default.fileExists(atPath: path) {
                let contents = try uncompressed(read(path), path: path)
                let digest = sha256(contents)
                if digest == name.sha256 {
                    found.append((name, path, contents))
                    break
                }
                problems.append("\(path) has SHA-256 \(digest), not \(name.sha256)")
            }
        }
        if found.isEmpty, !problems.isEmpty {
            throw TokenizerError(.hashMismatch, problems.joined(separator: "; "))
        }
        return found
    }

    /// The contents, inflated when they are gzip (magic 1f 8b).
    static func uncompressed(_ bytes: [UInt8], path: String) throws -> [UInt8] {
        guard bytes.count >= 2, bytes[0] == 0x1F, bytes[1] == 0x8B else { return bytes }
        var buffer = ByteBuffer(bytes: bytes)
        do {
            let inflated = try buffer.decompress(with: .gzip(), maxSize: 64 << 20)
            return Array(inflated.readableBytesView)
        } catch {
            throw TokenizerError(.malformed, "\(path): not valid gzip (\(error))")
        }
    }

    /// The directory of the `bpe_openai` package that `python3` imports, if any.
    static func pythonPackageDirectory() -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", "-c",
            "import importlib.util, os; s = importlib.util.find_spec('bpe_openai'); print(os.path.dirname(s.origin))",
        ]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        let path = String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return path.isEmpty ? nil : path
    }
}
