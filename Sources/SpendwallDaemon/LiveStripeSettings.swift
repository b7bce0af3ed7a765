import SpendwallConfig
import Synchronization

/// alerts.toml's `[stripe]` as it is now: the webhook and the reconciler read it on each use, so
/// a reload of alerts.toml applies to the next event.
final class LiveStripeSettings: Sendable {
    private let value: Mutex<StripeSettings?>

    init(_ settings: StripeSettings?) { value = Mutex(settings) }

    var current: StripeSettings? { value.withLock { $0 } }

    func update(_ settings: StripeSettings?) { value.withLock { $0 = settings } }
}
