package import IOASIDStore
import Logging
package import NIOCore

/// Test hooks (package, for the service's test target).
package enum ServiceTestHooks {
    /// What makes ``HotPath`` handlers answering allocations and frees on `store` as
    /// a connection's does (one service core behind them all), and what stops that core.
    package static func hotPath(store: IOASIDStore) throws -> (make: @Sendable () -> any ChannelHandler, stop: @Sendable () -> Void) {
        let core = try ServiceCore(store: store, metrics: nil, logger: Logger(label: "ioasid.test"), maxBody: 1 << 20, commandThreads: 1)
        return ({ HotPath(core: core) }, { core.executor.shutdown() })
    }
}
