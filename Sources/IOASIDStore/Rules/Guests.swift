import IOASIDMigrations
import LMDB

/// Guest IDs (the kernel series' SPIDs): inside a set, a guest ID maps one-to-one
/// to a host ID. The guest owns its namespace, so two sets may use the same
/// guest ID, and a migrated VM keeps its guest IDs while the host IDs may change.
extension IOASIDReading where Self: ~Copyable {
    /// The host ID that `guest` maps to in `set` (kernel `ioasid_find_by_spid`).
    ///
    /// - Throws: ``IOASIDError/Code-swift.struct/noSuchSet``, ``IOASIDError/Code-swift.struct/noSuchGuest``.
    public func hostID(forGuest guest: UInt32, in set: SetID) throws -> IOASID {
        guard let host = try mappedHost(ofGuest: guest, in: set) else {
            _ = try setRecord(set)  // say which is missing: the set, or the guest ID in it
            throw IOASIDError(.noSuchGuest, "set \(set) has no guest ID \(guest)")
        }
        return IOASID(host)
    }

    /// The guest ID attached to `id`, if any.
    ///
    /// - Throws: ``IOASIDError/Code-swift.struct/noSuchID``.
    public func guestID(for id: IOASID) throws -> UInt32? { try find(id).guest }

    /// The host ID the mapping of `guest` in `set` names, if there is one (a
    /// damaged mapping throws; it never counts as free).
    func mappedHost(ofGuest guest: UInt32, in set: SetID) throws -> UInt32? {
        try StoreLayout.withGuestKey(set: set.rawValue, guest: guest) { key in
            try record(rawKey: key, in: schema.guests) { r in
                let host = try r.u32()
                try r.end()
                return host
            }
        }
    }

    /// Refuses a guest ID that `set` already maps (kernel `-EINVAL`).
    func checkGuestFree(_ guest: UInt32, in set: SetID) throws {
        if let host = try mappedHost(ofGuest: guest, in: set) {
            throw IOASIDError(.duplicateGuest, "guest ID \(guest) already maps to host ID \(host) in set \(set)")
        }
    }
}

extension WriteTransaction {
    /// Attaches guest ID `guest` to `id` in `set` (kernel `ioasid_attach_spid`) and commits BIND.
    ///
    /// - Throws: ``IOASIDError/Code-swift.struct/noSuchID``, ``IOASIDError/Code-swift.struct/wrongSet``,
    ///   ``IOASIDError/Code-swift.struct/setFrozen``, ``IOASIDError/Code-swift.struct/idFreePending``,
    ///   ``IOASIDError/Code-swift.struct/guestAlreadyAttached``, ``IOASIDError/Code-swift.struct/duplicateGuest``.
    public func attach(guest: UInt32, to id: IOASID, in set: SetID) throws {
        try operation {
            let setRecord = try changeableSetRecord(set)
            var record = try ownedRecord(id, in: set)
            guard !record.isFreePending else { throw IOASIDError(.idFreePending, "ID \(id) is free-pending") }
            if let existing = record.guest {
                throw IOASIDError(.guestAlreadyAttached, "ID \(id) already has guest ID \(existing)")
            }
            try checkGuestFree(guest, in: set)
            record.guest = guest
            try putID(record, id)
            try putGuestMapping(guest, in: set.rawValue, to: id.rawValue)
            try emit(.bind, set: set, token: setRecord.token, id: id, guest: guest)
        }
    }

    /// Detaches the guest ID of `id` in `set` and commits UNBIND.
    ///
    /// - Returns: the guest ID that was attached.
    /// - Throws: ``IOASIDError/Code-swift.struct/noSuchID``, ``IOASIDError/Code-swift.struct/wrongSet``,
    ///   ``IOASIDError/Code-swift.struct/setFrozen``, ``IOASIDError/Code-swift.struct/noSuchGuest``.
    @discardableResult
    public func detach(_ id: IOASID, in set: SetID) throws -> UInt32 {
        try operation {
            let setRecord = try changeableSetRecord(set)
            var record = try ownedRecord(id, in: set)
            guard let guest = record.guest else { throw IOASIDError(.noSuchGuest, "ID \(id) has no guest ID") }
            record.guest = nil
            try putID(record, id)
            try remove(StoreLayout.guestKey(set: set.rawValue, guest: guest), in: schema.guests)
            try emit(.unbind, set: set, token: setRecord.token, id: id, guest: guest)
            return guest
        }
    }

    /// Writes the mapping of `guest` in `set` to host ID `host` (`u32 host`), its key on the stack.
    func putGuestMapping(_ guest: UInt32, in set: UInt32, to host: UInt32) throws {
        try StoreLayout.withGuestKey(set: set, guest: guest) { key in
            _ = try txn.put(sealedPayloadSize: 4, rawKey: key, in: schema.guests) { $0.storeBytes(of: host.bigEndian, as: UInt32.self) }
        }
    }

    /// Removes a freed ID's guest mapping, committing UNBIND.
    func unbindOnFree(_ id: IOASID, record: inout IDRecord, token: String) throws {
        guard let guest = record.guest else { return }
        try remove(StoreLayout.guestKey(set: record.set, guest: guest), in: schema.guests)
        record.guest = nil
        try emit(.unbind, set: SetID(record.set), token: token, id: id, guest: guest)
    }
}
