import Foundation
import Logging
import SpendwallPricing
import SpendwallTokenizer
import SpendwallTokenizerFiles
import Synchronization

/// The exact tokenizers whose rank files are installed (docs/tokenizers.md), loaded once per
/// process and data dir and handed to every ``RequestEstimator``; an encoding without a usable
/// rank file is left out, so its models fall back to the byte estimate (`exact: false`).
enum InstalledTokenizers {
    private static let loaded = Mutex<[String: [String: any TextTokenCounter]]>([:])

    /// The counters by encoding name (`o200k_base`, `cl100k_base`). Restart the daemon after
    /// `spendwall tokenizer install` to pick up new files.
    static func counters(dataDirectory: String, logger: Logger? = nil) -> [String: any TextTokenCounter] {
        loaded.withLock { cache in
            if let counters = cache[dataDirectory] { return counters }
            let store = RankFileStore(dataDirectory: dataDirectory, environment: ProcessInfo.processInfo.environment)
            var counters: [String: any TextTokenCounter] = [:]
            for name in EncodingName.allCases {
                do {
                    counters[name.rawValue] = EncodingCounter(encoding: try store.load(name))
                } catch {
                    logger?.notice("tokenizer \(name) not loaded, its estimates are approximate: \(error)")
                }
            }
            cache[dataDirectory] = counters
            return counters
        }
    }
}

/// An exact tokenizer as the estimator's text counter (tiktoken's `encode_ordinary`).
struct EncodingCounter: TextTokenCounter {
    var encoding: Encoding
    func countTokens(_ text: String) -> Int { encoding.countTokens(text) }
}
