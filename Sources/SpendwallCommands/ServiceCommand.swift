import ArgumentParser
import Foundation

struct ServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "service", abstract: "Manage the systemd --user units.", subcommands: [Install.self])

    struct Install: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "install",
            abstract: "Write spendwall.service and spendwall.socket into ~/.config/systemd/user/ for this binary.")

        @Option(help: "Directory to write the units to (default: $XDG_CONFIG_HOME/systemd/user).") var directory:
            String?

        func run() async throws {
            let env = ProcessInfo.processInfo.environment
            let configHome = env["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory() + "/.config"
            let target = directory ?? configHome + "/systemd/user"
            try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
            let binary = Spawn.currentExecutable()
            for (name, text) in SystemdUnits.all(binary: binary) {
                let path = target + "/" + name
                try text.write(toFile: path, atomically: true, encoding: .utf8)
                print("wrote \(path)")
            }
            print(
                """

                Enable them with:
                  systemctl --user daemon-reload
                  systemctl --user enable --now spendwall.socket
                  systemctl --user start spendwall.service   # optional: the socket starts it on first use
                """)
        }
    }
}

/// The systemd unit files, from the templates in systemd/ with the binary's real path.
enum SystemdUnits {
    static func all(binary: String) -> [(String, String)] {
        [
            ("spendwall.service", service.replacingOccurrences(of: "@SPENDWALL_BIN@", with: binary)),
            ("spendwall.socket", socket),
        ]
    }

    // Keep in step with systemd/spendwall.service (a test compares them).
    static let service = """
        [Unit]
        Description=Spendwall: caps and attributes what AI agents spend on LLM APIs
        Documentation=https://github.com/spendwall/spendwall
        Requires=spendwall.socket
        After=spendwall.socket

        [Service]
        Type=notify
        NotifyAccess=main
        ExecStart=@SPENDWALL_BIN@ daemon
        ExecReload=/bin/kill -HUP $MAINPID
        WatchdogSec=30
        Restart=on-failure
        RestartSec=1
        TimeoutStopSec=30
        UMask=0077
        NoNewPrivileges=yes
        LockPersonality=yes
        RestrictRealtime=yes
        RestrictSUIDSGID=yes
        SystemCallArchitectures=native

        [Install]
        WantedBy=default.target

        """

    // Keep in step with systemd/spendwall.socket (a test compares them).
    static let socket = """
        [Unit]
        Description=Spendwall API socket

        [Socket]
        ListenStream=%t/spendwall/spendwall.sock
        SocketMode=0600
        DirectoryMode=0700
        RemoveOnStop=yes

        [Install]
        WantedBy=sockets.target

        """
}
