import NIOHTTP1
import Testing

@testable import SpendwallDaemon

/// Which socket API route each panel API path reaches: the session and reconciliation reads are
/// offered, and nothing that starts or finishes a session, reads its terminal output or imports
/// figures.
@Suite struct PanelRouteTests {
    @Test func sessionAndReconcileReadsReachTheSocketAPI() {
        #expect(PanelServer.socketRoute(.GET, "/sessions") == "/v1/sessions")
        #expect(PanelServer.socketRoute(.GET, "/sessions/s-0123") == "/v1/sessions/s-0123")
        #expect(
            PanelServer.socketRoute(.GET, "/sessions/s-0123/artifacts/git_diff")
                == "/v1/sessions/s-0123/artifacts/git_diff")
        #expect(
            PanelServer.socketRoute(.GET, "/sessions/s-0123/artifacts/git_status")
                == "/v1/sessions/s-0123/artifacts/git_status")
        #expect(PanelServer.socketRoute(.GET, "/reconcile") == "/v1/reconcile")
        #expect(PanelServer.socketRoute(.POST, "/kill") == "/v1/kill")
    }

    @Test func writesAndOtherReadsAreNotOffered() {
        #expect(PanelServer.socketRoute(.POST, "/sessions") == nil)
        #expect(PanelServer.socketRoute(.POST, "/sessions/s-0123/finish") == nil)
        #expect(PanelServer.socketRoute(.GET, "/sessions/s-0123/finish") == nil)
        #expect(PanelServer.socketRoute(.GET, "/sessions/s-0123/artifacts/output") == nil)
        #expect(PanelServer.socketRoute(.GET, "/sessions/") == nil)
        #expect(PanelServer.socketRoute(.GET, "/sessions//artifacts/git_diff") == nil)
        #expect(PanelServer.socketRoute(.GET, "/sessions/s-0123/artifacts/git_diff/x") == nil)
        #expect(PanelServer.socketRoute(.POST, "/reconcile/import") == nil)
        #expect(PanelServer.socketRoute(.GET, "/reconcile/import") == nil)
    }
}
