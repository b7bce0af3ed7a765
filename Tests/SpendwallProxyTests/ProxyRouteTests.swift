import Testing

@testable import SpendwallProxy

@Suite struct ProxyRouteTests {
    @Test func pathPrefixesNameTheAgentAndSessionAndAreTakenOff() throws {
        let route = try ProxyRoute.resolve(
            method: "POST", uri: "/agent/code%20reviewer/session/s-1/v1/chat/completions?x=1", headers: []
        ).get()
        #expect(route.agent == "code reviewer")
        #expect(route.session == "s-1")
        #expect(route.upstreamPath == "/v1/chat/completions?x=1")
        #expect(route.endpoint == .openAIChat)
        let swapped = try ProxyRoute.resolve(method: "POST", uri: "/session/s/agent/a/v1/messages", headers: []).get()
        #expect(swapped.agent == "a" && swapped.session == "s" && swapped.endpoint == .anthropicMessages)
    }

    @Test(arguments: [
        ("POST", "/v1/responses", ProxyEndpoint.openAIResponses), ("POST", "/v1/completions", .openAICompletions),
        ("POST", "/v1/embeddings", .openAIEmbeddings), ("POST", "/v1/messages/count_tokens", .anthropicPassthrough),
        ("GET", "/v1/models", .openAIPassthrough), ("GET", "/v1/models/gpt-4o", .openAIPassthrough),
    ])
    func endpoints(_ example: (String, String, ProxyEndpoint)) throws {
        #expect(try ProxyRoute.resolve(method: example.0, uri: example.1, headers: []).get().endpoint == example.2)
    }

    @Test func anthropicClientsListAnthropicModels() throws {
        let route = try ProxyRoute.resolve(
            method: "GET", uri: "/v1/models", headers: [("anthropic-version", "2023-06-01")]
        )
        .get()
        #expect(route.endpoint == .anthropicPassthrough)
        #expect(!route.endpoint.isBilled)
    }

    @Test(arguments: [
        ("GET", "/v1/chat/completions", "does not serve GET /v1/chat/completions"),
        ("POST", "/v2/other", "does not serve POST /v2/other"), ("POST", "/agent//v1/messages", "followed by a name"),
        ("POST", "/agent/a/agent/b/v1/messages", "twice"), ("POST", "/agent/%zz/v1/messages", "followed by a name"),
    ])
    func otherRequestsAreRefusedWithAReason(_ example: (String, String, String)) {
        guard case .failure(let error) = ProxyRoute.resolve(method: example.0, uri: example.1, headers: []) else {
            Issue.record("\(example.1) was routed")
            return
        }
        #expect(error.message.contains(example.2), "\(error.message)")
    }

    @Test func headersCarryAttribution() {
        let headers = [
            ("X-Agent-Name", "agix-agent"), ("x-spendwall-tags", " customer = acme ,team=core, junk"),
            ("X-Spendwall-Session", "s9"),
        ]
        let attribution = HeaderAttribution(headers: headers)
        #expect(attribution.agent == "agix-agent")
        #expect(attribution.session == "s9")
        #expect(attribution.tags == ["customer": "acme", "team": "core"])
        #expect(HeaderAttribution(headers: [("x-agent-name", "b"), ("x-spendwall-agent", "a")]).agent == "a")
    }
}
