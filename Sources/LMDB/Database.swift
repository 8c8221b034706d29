internal import CLMDB

/// A handle to a named database inside an ``Environment``.
///
/// Handles are opened once, through ``Environment/openDatabase(named:create:)``,
/// and stay valid for the life of the environment.
public struct Database: Sendable, Hashable, CustomStringConvertible {
    let dbi: MDB_dbi
    /// The database's name.
    public let name: String

    init(dbi: MDB_dbi, name: String) {
        self.dbi = dbi
        self.name = name
    }

    /// The database's name.
    public var description: String { name }
}

/// A key and its value, copied out of the map.
public struct Entry: Sendable, Hashable {
    /// The key's bytes.
    public let key: [UInt8]
    /// The value's bytes.
    public let value: [UInt8]

    /// Creates an entry.
    public init(key: [UInt8], value: [UInt8]) {
        self.key = key
        self.value = value
    }
}
