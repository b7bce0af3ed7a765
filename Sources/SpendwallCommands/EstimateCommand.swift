import ArgumentParser
import Foundation
import SpendwallCore

/// `spendwall estimate [--model M] < request.json`: what a call would cost before it is sent.
struct EstimateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "estimate",
        abstract: "Estimate what a request would cost: input tokens, worst-case output and the dollar range.",
        discussion: """
            Reads the JSON body an agent is about to send (OpenAI chat/responses or Anthropic
            messages) from standard input, or from FILE. The model is the body's "model" unless
            --model names another. Asks the running daemon, so the answer uses the prices and
            tokenizer it uses.
            """)

    @Option(help: "The model to price the request for (default: the request's \"model\").") var model: String?
    @Option(help: "openai or anthropic (default: guessed from the request's shape).") var provider: String?
    @Flag(help: "Price it as a batch call.") var batch = false
    @Flag(help: "Print the daemon's JSON answer.") var json = false
    @Argument(help: "A file with the request body (default: standard input).") var file: String?

    func run() async throws {
        let data: Data
        if let file {
            guard let read = FileManager.default.contents(atPath: file) else {
                throw CLIFailure.usage("cannot read \(file)")
            }
            data = read
        } else {
            data = FileHandle.standardInput.readDataToEndOfFile()
        }
        let request: Any
        do {
            request = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw CLIFailure.usage(
                "the request is not JSON (\(error.localizedDescription)); pass the body an agent would send,"
                    + " e.g. spendwall estimate < request.json")
        }
        guard request is [String: Any] else {
            throw CLIFailure.usage("the request must be a JSON object (the body an agent would send)")
        }
        var body: [String: Any] = ["request": request]
        if let model { body["model"] = model }
        if let provider { body["provider"] = provider }
        if batch { body["batch"] = true }
        let response = try await CommandContext.client.post(
            "/v1/estimate", json: try JSONSerialization.data(withJSONObject: body))
        guard response.status == 200, let answer = response.json else {
            let message =
                response.error.map { "\($0.message) (\($0.code))" } ?? "the daemon answered HTTP \(response.status)"
            throw CLIFailure(message: message, code: response.status == 400 ? 2 : 1)
        }
        if json {
            CommandContext.printJSON(response.body)
            return
        }
        func int(_ key: String) -> Int64 { (answer[key] as? NSNumber)?.int64Value ?? 0 }
        let name = answer["model"] as? String ?? "?"
        let entry = answer["price_entry"] as? String
        print(
            "model          \(name)"
                + (entry.map { $0 == name ? "" : " (priced as \($0))" } ?? " (not in the price table: fallback price)"))
        let exact = answer["exact"] as? Bool ?? false
        print(
            "input tokens   \(Format.count(int("input_tokens")))"
                + (exact ? " (exact)" : " (estimated from bytes: no tokenizer)"))
        print("output, max    \(Format.count(int("max_output_tokens")))")
        print(
            "cost           \(Money.format(int("min_cost_nanousd"))) to \(Money.format(int("max_cost_nanousd")))"
                + ((answer["batch"] as? Bool ?? false) ? " (batch price)" : ""))
        if let retired = answer["retired"] as? String {
            print("note           the provider retired this model on \(retired)")
        }
    }
}
