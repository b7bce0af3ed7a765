// spendwall-tokenizer-bench FILE ENCODING REPETITIONS
// Encodes FILE (UTF-8) with `encodeOrdinary` REPETITIONS times on this one thread, after one
// warm-up run, and prints one JSON object: the byte and token counts and each run's seconds.
// Rank files are found as the daemon finds them ($SPENDWALL_DATA_DIR/tokenizers, tiktoken's caches).
import Foundation
import SpendwallTokenizer
import SpendwallTokenizerFiles

let arguments = CommandLine.arguments
guard arguments.count == 4, let name = EncodingName(rawValue: arguments[2]), let repetitions = Int(arguments[3]),
    let data = FileManager.default.contents(atPath: arguments[1])
else {
    FileHandle.standardError.write(
        Data("usage: spendwall-tokenizer-bench FILE o200k_base|cl100k_base REPETITIONS\n".utf8))
    exit(2)
}
let environment = ProcessInfo.processInfo.environment
let dataDirectory = environment["SPENDWALL_DATA_DIR"] ?? (NSHomeDirectory() + "/.local/share/spendwall")
let loadStart = ContinuousClock.now
let encoding: Encoding
do {
    encoding = try RankFileStore(dataDirectory: dataDirectory, environment: environment).load(name)
} catch {
    FileHandle.standardError.write(Data("\(error)\n".utf8))
    exit(1)
}
let loadSeconds = (ContinuousClock.now - loadStart) / .seconds(1)
let text = String(decoding: data, as: UTF8.self)
var tokens = encoding.encodeOrdinary(text).count  // warm-up
var seconds: [Double] = []
for _ in 0..<repetitions {
    let start = ContinuousClock.now
    tokens = encoding.encodeOrdinary(text).count
    seconds.append((ContinuousClock.now - start) / .seconds(1))
}
print(
    "{\"encoding\": \"\(name)\", \"bytes\": \(data.count), \"tokens\": \(tokens), \"load_seconds\": \(loadSeconds), "
        + "\"seconds\": [\(seconds.map { String($0) }.joined(separator: ", "))]}")
