#if canImport(Glibc)
import Glibc
#endif

/// The process's environment variables, one at a time with `getenv`: Foundation's
/// `ProcessInfo.environment` copies the whole environment into a dictionary on its
/// first use, about 0.25 ms of a one-shot process (measured with `perf record`).
enum EnvironmentVariables {
    /// The value of `name`, or `nil` when it is unset.
    static func value(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    /// The value of `name`, or `nil` when it is unset or empty (an empty
    /// `$IOASID_STORE` or `$IOASID_SOCKET` counts as unset).
    static func nonEmpty(_ name: String) -> String? {
        guard let value = value(name), !value.isEmpty else { return nil }
        return value
    }
}
