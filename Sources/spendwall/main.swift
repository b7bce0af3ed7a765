import SpendwallCommands

await SpendwallCLI.runMain()
