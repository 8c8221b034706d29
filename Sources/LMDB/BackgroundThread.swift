internal import CLMDBSupport
#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// A detached POSIX thread running one closure: every thread of the package
/// (the group-commit writer, the change watch, the CLI's progress ticker and
/// the writer of a consumed command's input, the service's command threads)
/// starts here instead of with Foundation's `Thread`, whose class pulls all of
/// swift-corelibs-foundation and ICU into a statically linked binary — about
/// 36,000 more relocations to apply, and a millisecond or two, at every start
/// of the `ioasid` tool.
package enum BackgroundThread {
    /// Starts a detached thread named `name` (the kernel keeps the first 15
    /// bytes) that runs `body` and ends.
    ///
    /// - Throws: the `pthread_create` error (`EAGAIN` when the process or the
    ///   system has no thread to spare) as an ``LMDBError`` holding that errno.
    package static func start(name: String, _ body: @escaping @Sendable () -> Void) throws(LMDBError) {
        if let code = SyscallFaults.injected(.threadStart) { throw LMDBError(code: code) }
        let context = Unmanaged.passRetained(Context(name: name, body: body)).toOpaque()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        #if canImport(Glibc)
        var thread = pthread_t()
        #else
        var thread: pthread_t?
        #endif
        let status = pthread_create(&thread, &attributes, { raw in
            #if canImport(Glibc)
            guard let raw else { return nil }
            #endif
            let context = Unmanaged<Context>.fromOpaque(raw).takeRetainedValue()
            _ = clmdb_name_thread(context.name)
            context.body()
            return nil
        }, context)
        guard status == 0 else {
            Unmanaged<Context>.fromOpaque(context).release()
            throw LMDBError(code: status)
        }
    }

    private final class Context {
        let name: String
        let body: @Sendable () -> Void

        init(name: String, body: @escaping @Sendable () -> Void) {
            self.name = name
            self.body = body
        }
    }
}
