import Foundation
import SpendwallTokenizer
import Testing

@testable import SpendwallTokenizerFiles

/// Finding, verifying and installing rank files in temporary directories.
@Suite struct RankFileStoreTests {
    static func withTemporaryDirectory<T>(_ body: (String) throws -> T) rethrows -> T {
        let path = NSTemporaryDirectory() + "/swtok-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try body(path)
    }

    /// The `bpe_openai/data` directory of the repository's test virtualenv
    /// (`scripts/test-python.sh` installs `bpe-openai` there), when present.
    static let packagedRankFiles: String? = {
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        let lib = repository + "/.venv/lib"
        guard let pythons = try? FileManager.default.contentsOfDirectory(atPath: lib) else { return nil }
        return pythons.map { lib + "/" + $0 + "/site-packages/bpe_openai/data" }
            .first { FileManager.default.fileExists(atPath: $0 + "/o200k_base.tiktoken.gz") }
    }()

    @Test func tiktokenCacheNaming() {
        // hashlib.sha1(url.encode()).hexdigest(), as tiktoken's load.py names cache files.
        #expect(RankFileStore.tiktokenCacheKey(.o200kBase) == "fb374d419588a4632f3f557e76b4b70aebbca790")
        #expect(RankFileStore.tiktokenCacheKey(.cl100kBase) == "9b5ad71b2ce5302211f9c61530b329a4922fc6a4")
    }

    @Test func cacheDirectoriesFollowTiktoken() {
        #expect(RankFileStore.tiktokenCacheDirectories([:]) == ["/tmp/data-gym-cache"])
        #expect(
            RankFileStore.tiktokenCacheDirectories([
                "TIKTOKEN_CACHE_DIR": "/a", "DATA_GYM_CACHE_DIR": "/b", "TMPDIR": "/t",
            ]) == ["/a", "/b", "/t/data-gym-cache"])
        #expect(RankFileStore.tiktokenCacheDirectories(["TIKTOKEN_CACHE_DIR": ""]) == ["/tmp/data-gym-cache"])
        let store = RankFileStore(dataDirectory: "/d", environment: ["TIKTOKEN_CACHE_DIR": "/c"])
        #expect(
            store.searchPaths(.o200kBase) == [
                "/d/tokenizers/o200k_base.tiktoken", "/c/fb374d419588a4632f3f557e76b4b70aebbca790",
                "/tmp/data-gym-cache/fb374d419588a4632f3f557e76b4b70aebbca790",
            ])
    }

    @Test func missingFileSaysWhatToRun() {
        Self.withTemporaryDirectory { root in
            let store = RankFileStore(directory: root + "/tokenizers", cacheDirectories: [root + "/cache"])
            let error = #expect(throws: TokenizerError.self) { try store.load(.cl100kBase) }
            #expect(error?.code == .missing)
            #expect(error?.message.contains("spendwall tokenizer install") == true)
            #expect(store.status(.cl100kBase).path == nil)
        }
    }

    @Test func corruptFileIsRefusedWithItsHash() throws {
        try Self.withTemporaryDirectory { root in
            let store = RankFileStore(directory: root + "/tokenizers", cacheDirectories: [])
            try FileManager.default.createDirectory(atPath: store.directory, withIntermediateDirectories: true)
            let path = store.directory + "/o200k_base.tiktoken"
            #expect(FileManager.default.createFile(atPath: path, contents: Data("IQ== 0\n".utf8)))
            let error = #expect(throws: TokenizerError.self) { try store.load(.o200kBase) }
            #expect(error?.code == .hashMismatch)
            #expect(error?.message.contains(path) == true)
            #expect(error?.message.contains("spendwall tokenizer install") == true)
            #expect(store.status(.o200kBase).problems.count == 1)

            let install = #expect(throws: TokenizerError.self) { try store.install(from: path) }
            #expect(install?.message.contains("is not a rank file tiktoken pins") == true)
            #expect(throws: TokenizerError.self) { try store.install(from: root + "/nothing-here") }
        }
    }

    @Test(.enabled(if: packagedRankFiles != nil, "needs bpe-openai in .venv: run scripts/test-python.sh once"))
    func installsFromThePythonPackageAndLoads() throws {
        try Self.withTemporaryDirectory { root in
            let store = RankFileStore(directory: root + "/tokenizers", cacheDirectories: [root + "/cache"])
            let installed = try store.install(from: Self.packagedRankFiles!)
            #expect(Set(installed.map(\.name)) == Set(EncodingName.allCases))
            let o200k = try store.load(.o200kBase)
            let cl100k = try store.load(.cl100kBase)
            // Ids from tiktoken 0.14.
            #expect(o200k.encodeOrdinary("hello world") == [24912, 2375])
            #expect(cl100k.encodeOrdinary("hello world") == [15339, 1917])
            #expect(o200k.mergeableTokenCount == 199_998)
            #expect(cl100k.mergeableTokenCount == 100_256)

            // A tiktoken cache names files by hash; installing from one finds them.
            try FileManager.default.createDirectory(atPath: root + "/cache", withIntermediateDirectories: true)
            try FileManager.default.copyItem(
                atPath: store.directory + "/cl100k_base.tiktoken",
                toPath: root + "/cache/" + RankFileStore.tiktokenCacheKey(.cl100kBase))
            let other = RankFileStore(directory: root + "/other", cacheDirectories: [root + "/cache"])
            #expect(other.status(.cl100kBase).path == root + "/cache/9b5ad71b2ce5302211f9c61530b329a4922fc6a4")
            #expect(try other.install(from: nil).map(\.name).contains(.cl100kBase))
        }
    }
}
