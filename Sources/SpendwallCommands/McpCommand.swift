import ArgumentParser
import SpendwallMCP

/// `spendwall mcp`: the MCP server an agent (Claude Code, Codex, any MCP client) launches.
struct McpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mcp",
        abstract: "Run the MCP server on stdio: budget, estimates and pre-approvals for the agent that launches it.",
        discussion: """
            Add it to Claude Code with `claude mcp add spendwall -- spendwall mcp --agent NAME`, or to
            Codex in ~/.codex/config.toml (see the README). It talks to the running daemon over its socket.
            """)

    @Option(help: "The agent name its calls carry (the SDK's agent, or the proxy's /agent/NAME/ path).")
    var agent: String?

    func run() async throws {
        try await SpendwallMCPServer.run(socketPath: CommandContext.paths.socketPath, agent: agent)
    }
}
