import ArgumentParser
import Foundation
import SpendwallConfig
import SpendwallCore
import SpendwallPricing

/// `spendwall pricing ls|show`: the price table in force (built-in merged with pricing.toml),
/// read from the same files the daemon reads.
struct PricingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pricing",
        abstract: "Show the price table in force: built-in prices merged with pricing.toml.",
        subcommands: [List.self, Show.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ls", abstract: "List every priced model with its rates, source and date.")
        @Flag(help: "Print JSON instead of a table.") var json = false
        @Flag(help: "Include models their provider has retired.") var retired = false

        func run() async throws {
            let table = try PricingCommand.effectiveTable()
            let names = table.entries.keys.sorted().filter { retired || json || table.entries[$0]!.retired == nil }
            if json {
                let rows = names.map { PricingCommand.jsonObject(name: $0, table.entries[$0]!) }
                let data = try JSONSerialization.data(withJSONObject: rows, options: [.prettyPrinted, .sortedKeys])
                print(String(decoding: data, as: UTF8.self))
                return
            }
            var text = TextTable(
                header: [
                    "MODEL", "INPUT", "OUTPUT", "CACHE READ", "CACHE WRITE", "1H WRITE", "LONG CONTEXT", "SOURCE",
                    "AS OF",
                ],
                rightAligned: [1, 2, 3, 4, 5])
            for name in names {
                let p = table.entries[name]!
                text.rows.append([
                    name + (p.retired.map { " (retired \($0))" } ?? ""), Money.format(p.inputPerMillion),
                    Money.format(p.outputPerMillion), Money.format(p.cacheReadPerMillion),
                    Money.format(p.cacheWritePerMillion), Money.format(p.cacheWrite1hPerMillion),
                    p.longContext.map { "> \(Format.count($0.thresholdTokens))" } ?? "", p.source, p.asOf ?? "",
                ])
            }
            print(text.render())
            let hidden = table.entries.count - names.count
            print(
                "\nUSD per million tokens. Batch calls pay \(PriceTable.defaultFallback.batchPercent)% unless noted;"
                    + " unknown models are priced at the fallback (\(Money.format(table.fallback.inputPerMillion)) in,"
                    + " \(Money.format(table.fallback.outputPerMillion)) out)."
                    + (hidden > 0 ? " \(hidden) retired models hidden (--retired shows them)." : ""))
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show", abstract: "Show the price a model name resolves to, and why.")
        @Argument(help: "Model names as an agent sends them, e.g. claude-sonnet-4-5-20250929.") var models: [String]
        @Flag(help: "Print JSON (an array when several models are named).") var json = false

        func validate() throws {
            guard !models.isEmpty else { throw ValidationError("name a model, e.g. spendwall pricing show gpt-4o") }
        }

        func run() async throws {
            let table = try PricingCommand.effectiveTable()
            if json {
                let objects: [[String: Any]] = models.map { model in
                    let resolution = table.resolve(model)
                    var object = PricingCommand.jsonObject(name: resolution.entry ?? "(fallback)", resolution.price)
                    object["model"] = model
                    object["priced"] = resolution.priced
                    return object
                }
                let value: Any = objects.count == 1 ? objects[0] : objects
                let data = try JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys])
                print(String(decoding: data, as: UTF8.self))
                return
            }
            for (index, model) in models.enumerated() {
                if index > 0 { print("") }
                Self.describe(model, table.resolve(model))
            }
        }

        static func describe(_ model: String, _ resolution: PriceTable.Resolution) {
            let p = resolution.price
            if let entry = resolution.entry {
                print(entry == model ? "\(model)" : "\(model) → priced as \(entry)")
            } else {
                print(
                    "\(model) is not in the price table: it is priced at the fallback, deliberately high."
                        + " Add it to pricing.toml to price it exactly.")
            }
            var lines = [
                ("input", Money.format(p.inputPerMillion)),
                ("output (reasoning included)", Money.format(p.outputPerMillion)),
                ("cache read", Money.format(p.cacheReadPerMillion)),
                ("cache write (5 min)", Money.format(p.cacheWritePerMillion)),
                ("cache write (1 hour)", Money.format(p.cacheWrite1hPerMillion)),
                ("batch share", "\(p.batchPercent)%"),
            ]
            if let tier = p.longContext {
                lines.append(
                    (
                        "prompt above \(Format.count(tier.thresholdTokens)) tokens",
                        "\(Money.format(tier.rates.input)) in, \(Money.format(tier.rates.output)) out,"
                            + " \(Money.format(tier.rates.cacheRead)) cache read"
                    ))
            }
            lines.append(("source", p.source + (p.asOf.map { ", checked \($0)" } ?? "")))
            if let retired = p.retired { lines.append(("retired", retired)) }
            let width = lines.map(\.0.count).max() ?? 0
            for (label, value) in lines {
                print("  " + label + String(repeating: " ", count: width - label.count) + "  " + value)
            }
            print("  (USD per million tokens)")
        }
    }

    /// The built-in table with pricing.toml's entries and spendwall.toml's fallback.
    static func effectiveTable() throws -> PriceTable {
        let paths = CommandContext.paths
        var table = try BuiltinPrices.table().merging(PricingFile.load(paths: paths))
        table.fallback = try SpendwallConfiguration.load(paths: paths).fallbackPrice
        return table
    }

    static func jsonObject(name: String, _ p: ModelPrice) -> [String: Any] {
        func rates(_ r: TokenRates) -> [String: Any] {
            [
                "input_nanousd": r.input, "output_nanousd": r.output, "cache_read_nanousd": r.cacheRead,
                "cache_write_nanousd": r.cacheWrite, "cache_write_1h_nanousd": r.cacheWrite1h,
            ]
        }
        var object: [String: Any] = ["entry": name, "per_million_tokens": rates(p.rates), "source": p.source]
        object["batch_percent"] = p.batchPercent
        if let tier = p.longContext {
            object["long_context"] = ["above_tokens": tier.thresholdTokens, "per_million_tokens": rates(tier.rates)]
        }
        if let asOf = p.asOf { object["as_of"] = asOf }
        if let retired = p.retired { object["retired"] = retired }
        return object
    }
}
