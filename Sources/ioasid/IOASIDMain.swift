// The `ioasid` command-line tool; the commands live in IOASIDCommandLine.
import ArgumentParser
import IOASIDCommandLine

/// Runs ``IOASIDCommand`` (asynchronously: `events tail --follow` awaits new events).
@main
extension IOASIDCommand {}
