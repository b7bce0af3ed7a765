/// Who made a call and what it was for: the facts caps are matched against.
///
/// `agent`, `tags` and `session` are declared by the caller; `app` comes from the kernel.
public struct CallAttributes: Sendable, Hashable {
    public var provider: Provider
    public var model: String
    public var agent: String?
    public var app: String
    public var session: String?
    public var tags: [String: String]

    public init(
        provider: Provider,
        model: String,
        agent: String? = nil,
        app: String = "unknown",
        session: String? = nil,
        tags: [String: String] = [:]
    ) {
        self.provider = provider
        self.model = model
        self.agent = agent
        self.app = app
        self.session = session
        self.tags = tags
    }
}
