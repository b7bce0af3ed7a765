import ArgumentParser
import Foundation
import SpendwallTokenizer
import SpendwallTokenizerFiles

/// `spendwall tokenizer`: the rank files of the exact tokenizers (install, status) and an
/// encoder for scripts and the parity test.
struct TokenizerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer",
        abstract: "Install and inspect the rank files of the exact OpenAI tokenizers (o200k_base, cl100k_base).",
        subcommands: [Status.self, Install.self, Encode.self], defaultSubcommand: Status.self)

    static var store: RankFileStore {
        RankFileStore(
            dataDirectory: CommandContext.paths.dataDirectory, environment: ProcessInfo.processInfo.environment)
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status", abstract: "Which encodings are available, and from which file.")

        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let store = TokenizerCommand.store
            let statuses = EncodingName.allCases.map { store.status($0) }
            if json {
                let object: [[String: Any]] = statuses.map { status in
                    var entry: [String: Any] = [
                        "encoding": status.name.rawValue, "available": status.path != nil,
                        "problems": status.problems,
                    ]
                    if let path = status.path { entry["path"] = path }
                    return entry
                }
                CommandContext.printJSON(
                    try JSONSerialization.data(withJSONObject: ["directory": store.directory, "encodings": object]))
                return
            }
            var table = TextTable(header: ["ENCODING", "STATE", "FILE"])
            for status in statuses {
                table.rows.append([status.name.rawValue, status.path == nil ? "missing" : "ok", status.path ?? "-"])
            }
            print(table.render())
            for status in statuses { for problem in status.problems { print("warning: \(problem)") } }
            if statuses.contains(where: { $0.path == nil }) {
                print(
                    "\nWithout its rank file an encoding cannot count exactly. Install with "
                        + "`spendwall tokenizer install [--from FILE|DIR]` (a downloaded .tiktoken file, "
                        + "a tiktoken cache, or the bpe-openai Python package).")
            }
        }
    }

    struct Install: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "install",
            abstract: "Copy verified rank files into the data dir's tokenizers/.",
            discussion: """
                --from takes a rank file (.tiktoken, or .tiktoken.gz) or a directory: a folder of them, a \
                tiktoken cache, or a Python package that ships them (`pip install bpe-openai`, then \
                --from its bpe_openai/ directory or the site-packages holding it). Without --from, \
                tiktoken's caches and python3's bpe_openai package are searched. Every file's SHA-256 \
                must be the one tiktoken pins.
                """)

        @Option(help: "A rank file or a directory holding rank files.") var from: String?

        func run() throws {
            let store = TokenizerCommand.store
            let installed: [RankFileStore.Installed]
            do {
                installed = try store.install(from: from)
            } catch let error as TokenizerError {
                throw CLIFailure.failure(error.message)
            }
            for item in installed { print("\(item.name): \(item.source) -> \(item.destination)") }
        }
    }

    struct Encode: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "encode",
            abstract: "Print the token ids of text read on stdin.",
            discussion: """
                Without --jsonl, all of stdin is one text and one JSON array of ids is printed. With \
                --jsonl, each input line is a JSON string and each output line is its ids. Special-token \
                text is ordinary text (tiktoken's encode_ordinary, what the daemon counts with) unless \
                --allow-special (tiktoken's encode with allowed_special="all").
                """)

        @Option(help: "o200k_base or cl100k_base.") var encoding: String = EncodingName.o200kBase.rawValue
        @Option(help: "An OpenAI model; its encoding (as tiktoken maps it) replaces --encoding.") var model: String?
        @Flag(help: "Read one JSON string per line, print one JSON array per line.") var jsonl = false
        @Flag(help: "Encode special-token text as the special tokens.") var allowSpecial = false
        @Flag(help: "Print token counts instead of ids.") var count = false

        var encodingName: EncodingName? {
            if let model { return EncodingName(model: model) }
            return EncodingName(rawValue: encoding)
        }

        func validate() throws {
            if let model, EncodingName(model: model) == nil {
                throw ValidationError("--model: \(model) is not an OpenAI model on o200k_base or cl100k_base")
            }
            guard encodingName != nil else {
                throw ValidationError(
                    "--encoding must be one of \(EncodingName.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }

        func run() throws {
            let encoder: Encoding
            do {
                encoder = try TokenizerCommand.store.load(encodingName!)
            } catch let error as TokenizerError {
                throw CLIFailure.failure(error.message)
            }
            let input = FileHandle.standardInput.readDataToEndOfFile()
            var output = ""
            func emit(_ text: String) {
                let ids = allowSpecial ? encoder.encode(text, allowedSpecial: .all) : encoder.encodeOrdinary(text)
                output += count ? String(ids.count) : "[" + ids.map(String.init).joined(separator: ",") + "]"
                output += "\n"
            }
            if jsonl {
                for (number, line) in input.split(separator: UInt8(ascii: "\n")).enumerated() {
                    guard
                        let text = try? JSONSerialization.jsonObject(with: line, options: .fragmentsAllowed) as? String
                    else {
                        throw CLIFailure.usage("stdin line \(number + 1): not a JSON string")
                    }
                    emit(text)
                }
            } else {
                guard let text = String(data: input, encoding: .utf8) else {
                    throw CLIFailure.usage("stdin is not UTF-8")
                }
                emit(text)
            }
            FileHandle.standardOutput.write(Data(output.utf8))
        }
    }
}
