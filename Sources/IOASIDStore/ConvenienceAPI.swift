/// One-call operations: each is one transaction (reads) or one durable commit (writes).
/// The `async` variants go through the group-commit writer.
extension IOASIDStore {
    // MARK: Reads

    /// Store-wide figures and every set.
    public func status() throws(IOASIDError) -> StoreStatus { try readMapped { try $0.status() } }
    /// The capacity: IDs run from 1 to capacity − 1.
    public func capacity() throws(IOASIDError) -> UInt32 { try readMapped { try $0.capacity() } }
    /// The set with this ID.
    public func set(_ id: SetID) throws(IOASIDError) -> SetInfo { try readMapped { try $0.set(id) } }
    /// The live set owned by `token`, if any.
    public func set(withToken token: String) throws(IOASIDError) -> SetInfo? {
        try readMapped { try $0.set(withToken: token) }
    }
    /// Every set.
    public func sets() throws(IOASIDError) -> [SetInfo] { try readMapped { try $0.sets() } }
    /// The IDs a set holds, ascending.
    public func ids(in set: SetID, after: IOASID? = nil, limit: Int = .max) throws(IOASIDError) -> [IOASID] {
        try readMapped { try $0.ids(in: set, after: after, limit: limit) }
    }
    /// An ID's record after the set-ownership check.
    public func find(_ id: IOASID, in set: SetID) throws(IOASIDError) -> IDInfo {
        try readMapped { try $0.find(id, in: set) }
    }
    /// An ID's record.
    public func find(_ id: IOASID) throws(IOASIDError) -> IDInfo { try readMapped { try $0.find(id) } }
    /// The set that owns `id`.
    public func findSet(_ id: IOASID) throws(IOASIDError) -> SetID { try readMapped { try $0.findSet(id) } }

    // MARK: Writes

    /// Changes the capacity. See ``WriteTransaction/setCapacity(_:)``.
    public func setCapacity(_ capacity: UInt32) throws(IOASIDError) {
        try writeMapped { try $0.setCapacity(capacity) }
    }
    /// Creates a set. See ``WriteTransaction/createSet(token:quota:)``.
    public func createSet(token: String, quota: UInt32) throws(IOASIDError) -> SetID {
        try writeMapped { try $0.createSet(token: token, quota: quota) }
    }
    /// Changes a set's quota. See ``WriteTransaction/adjustQuota(of:to:)``.
    public func adjustQuota(of set: SetID, to quota: UInt32) throws(IOASIDError) {
        try writeMapped { try $0.adjustQuota(of: set, to: quota) }
    }
    /// Allocates the lowest free ID in range. See ``WriteTransaction/allocate(in:range:data:guest:)``.
    public func allocate(
        in set: SetID, range: ClosedRange<UInt32>? = nil, data: [UInt8] = [], guest: UInt32? = nil
    ) throws(IOASIDError) -> IOASID {
        try writeMapped { try $0.allocate(in: set, range: range, data: data, guest: guest) }
    }
    /// Attaches a guest ID. See ``WriteTransaction/attach(guest:to:in:)``.
    public func attach(guest: UInt32, to id: IOASID, in set: SetID) throws(IOASIDError) {
        try writeMapped { try $0.attach(guest: guest, to: id, in: set) }
    }
    /// Detaches a guest ID. See ``WriteTransaction/detach(_:in:)``.
    @discardableResult
    public func detach(_ id: IOASID, in set: SetID) throws(IOASIDError) -> UInt32 {
        try writeMapped { try $0.detach(id, in: set) }
    }
    /// The host ID of a guest ID. See ``IOASIDReading/hostID(forGuest:in:)``.
    public func hostID(forGuest guest: UInt32, in set: SetID) throws(IOASIDError) -> IOASID {
        try readMapped { try $0.hostID(forGuest: guest, in: set) }
    }
    /// The guest ID of a host ID, if any.
    public func guestID(for id: IOASID) throws(IOASIDError) -> UInt32? { try readMapped { try $0.guestID(for: id) } }
    /// Replaces an ID's private data. See ``WriteTransaction/setData(_:for:in:)``.
    public func setData(_ data: [UInt8], for id: IOASID, in set: SetID) throws(IOASIDError) {
        try writeMapped { try $0.setData(data, for: id, in: set) }
    }
    /// Frees an ID. See ``WriteTransaction/free(_:in:)``.
    @discardableResult
    public func free(_ id: IOASID, in set: SetID) throws(IOASIDError) -> Bool {
        try writeMapped { try $0.free(id, in: set) }
    }
    /// Frees a set's IDs, optionally destroying it. See ``WriteTransaction/freeSet(_:destroy:)``.
    @discardableResult
    public func freeSet(_ set: SetID, destroy: Bool) throws(IOASIDError) -> FreeSetResult {
        try writeMapped { try $0.freeSet(set, destroy: destroy) }
    }

    // MARK: Async writes (group commit)

    /// Creates a set in the next group commit.
    public func createSet(token: String, quota: UInt32) async throws(IOASIDError) -> SetID {
        try await submit { try $0.createSet(token: token, quota: quota) }
    }
    /// Changes a set's quota in the next group commit.
    public func adjustQuota(of set: SetID, to quota: UInt32) async throws(IOASIDError) {
        try await submit { try $0.adjustQuota(of: set, to: quota) }
    }
    /// Allocates in the next group commit; returns once that commit is durable.
    public func allocate(
        in set: SetID, range: ClosedRange<UInt32>? = nil, data: [UInt8] = [], guest: UInt32? = nil
    ) async throws(IOASIDError) -> IOASID {
        try await submit { try $0.allocate(in: set, range: range, data: data, guest: guest) }
    }
    /// Frees in the next group commit; returns once that commit is durable.
    @discardableResult
    public func free(_ id: IOASID, in set: SetID) async throws(IOASIDError) -> Bool {
        try await submit { try $0.free(id, in: set) }
    }
    /// Frees a set's IDs in the next group commit.
    @discardableResult
    public func freeSet(_ set: SetID, destroy: Bool) async throws(IOASIDError) -> FreeSetResult {
        try await submit { try $0.freeSet(set, destroy: destroy) }
    }
}
