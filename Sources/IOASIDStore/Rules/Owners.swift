import Foundation
import IOASIDMigrations
import LMDB

/// Owners that go away: a set may carry a lease, renewed by its owner, and/or
/// the process that owns it. ``WriteTransaction/reap(now:)`` frees and destroys
/// every set whose lease has not been renewed for two lease periods, or whose
/// owner process is gone (a reused PID does not count: the process's start
/// time must match too), committing SET_EXPIRED before the FREEs.
public struct SetOwner: Sendable, Equatable {
    /// The lease: the owner renews the set (``WriteTransaction/renew(_:)``) at
    /// least once per lease; unrenewed for two leases, the set is reaped.
    public var lease: Duration?
    /// The owning process: once it is gone, the set is reaped.
    public var process: Int32?

    /// No lease and no owner process (the default): the set lives until freed.
    public init(lease: Duration? = nil, process: Int32? = nil) {
        self.lease = lease
        self.process = process
    }
}

/// A set that ``WriteTransaction/reap(now:)`` freed and destroyed.
public struct ReapedSet: Sendable, Codable, Equatable {
    /// Why the set was reaped.
    public enum Reason: String, Sendable, Codable {
        /// Its lease was not renewed for two lease periods.
        case leaseExpired
        /// Its owner process is gone.
        case ownerGone
    }

    /// The set.
    public let set: SetID
    /// Its owner token.
    public let token: String
    /// Why.
    public let reason: Reason
    /// How many IDs were freed.
    public let freed: Int
    /// Whether the set is gone (it may instead wait for free-pending IDs).
    public let destroyed: Bool
}

/// The identity of a running process: its PID and its start time, so that a
/// PID reused by another process is not mistaken for the owner.
enum ProcessIdentity {
    /// The start time of process `pid` (clock ticks after boot, field 22 of
    /// `/proc/PID/stat`), or `nil` when there is no such process.
    static func startTime(of pid: Int32) -> UInt64? {
        guard pid > 0, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        // After "pid (comm)": field 3 is the state, so the start time (field 22) is the 20th.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count >= 20 else { return nil }
        // A zombie (killed, not yet waited for by its parent) or a dead task is gone:
        // its /proc entry outlives it until the parent reaps it.
        guard fields[0] != "Z", fields[0] != "X", fields[0] != "x" else { return nil }
        return UInt64(fields[19])
    }

    /// Whether the process that had `startTime` is still running as `pid`.
    static func isAlive(_ pid: UInt32, startTime: UInt64) -> Bool {
        self.startTime(of: Int32(bitPattern: pid)) == startTime
    }
}

extension WriteTransaction {
    /// Creates a set (see ``createSet(token:quota:)``) owned by `owner`: with
    /// a lease, a process, or both.
    ///
    /// - Throws: as ``createSet(token:quota:)``, and ``IOASIDError/Code-swift.struct/invalidArgument``
    ///   for a lease under a millisecond or a process that is not running.
    public func createSet(token: String, quota: UInt32, owner: SetOwner) throws -> SetID {
        try operation {
            let lease = owner.lease.map(Self.milliseconds) ?? 0
            if owner.lease != nil, lease == 0 { throw IOASIDError(.invalidArgument, "a lease must be at least 1 ms") }
            var startTime: UInt64 = 0
            if let pid = owner.process {
                guard let started = ProcessIdentity.startTime(of: pid) else {
                    throw IOASIDError(.invalidArgument, "there is no process \(pid) to own the set")
                }
                startTime = started
            }
            let set = try createSet(token: token, quota: quota)
            var record = try setRecord(set)
            record.leaseMillis = lease
            record.renewedAt = lease > 0 ? IOASIDStore.nowMillis() : 0
            record.ownerPID = owner.process.map { UInt32(bitPattern: $0) } ?? 0
            record.ownerStartTime = startTime
            putSet(record, set)
            return set
        }
    }

    /// Renews a set's lease (its owner calls this at least once per lease).
    ///
    /// - Throws: ``IOASIDError/Code-swift.struct/noSuchSet``, ``IOASIDError/Code-swift.struct/invalidArgument`` (the set has no lease).
    public func renew(_ set: SetID) throws {
        try operation {
            var record = try liveSetRecord(set)
            guard record.leaseMillis > 0 else { throw IOASIDError(.invalidArgument, "set \(set) has no lease to renew") }
            record.renewedAt = IOASIDStore.nowMillis()
            putSet(record, set)
        }
    }

    /// Frees and destroys every live set whose lease was not renewed for two
    /// lease periods, or whose owner process is gone, committing SET_EXPIRED
    /// (then its FREEs and SET_FREE). Frozen sets (a migration in progress)
    /// are left alone. Idempotent: a second reap finds nothing to do.
    ///
    /// - Parameter now: the time to judge leases by (milliseconds since 1970; default now).
    @discardableResult
    public func reap(now: UInt64? = nil) throws -> [ReapedSet] {
        try operation {
            let now = now ?? IOASIDStore.nowMillis()
            var reaped: [ReapedSet] = []
            for info in try sets() where info.id != .system && !info.isDestroyPending && !info.isFrozen {
                let record = try setRecord(info.id)
                let reason: ReapedSet.Reason
                if record.leaseMillis > 0, now > record.renewedAt, now - record.renewedAt > 2 * record.leaseMillis {
                    reason = .leaseExpired
                } else if record.ownerPID != 0, !ProcessIdentity.isAlive(record.ownerPID, startTime: record.ownerStartTime) {
                    reason = .ownerGone
                } else {
                    continue
                }
                try emit(.setExpired, set: info.id, token: record.token)
                let result = try freeSet(info.id, destroy: true)
                reaped.append(ReapedSet(set: info.id, token: record.token, reason: reason, freed: result.freed.count, destroyed: result.destroyed))
            }
            return reaped
        }
    }

    static func milliseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0 else { return 0 }
        return UInt64(seconds) * 1000 + UInt64(max(0, attoseconds) / 1_000_000_000_000_000)
    }
}
