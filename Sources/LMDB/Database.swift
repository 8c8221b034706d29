internal import CLMDB

/// A handle to a named database inside an ``Environment``.
///
/// Handles are opened once, through ``Environment/openDatabase(named:create:)``,
/// and stay valid for the life of the environment.
public struct Database: Sendable, Hashable, CustomStringConvertible {
    // Two integers and nothing counted: a handle is copied into every lookup, and a
    // `String` name in it cost a retain and a release each time. The name, wanted
    // only to describe the database (errors, dumps), is kept once in `DatabaseNames`.
    let dbi: MDB_dbi
    private let nameNumber: UInt32

    init(dbi: MDB_dbi, name: String) {
        self.dbi = dbi
        nameNumber = DatabaseNames.number(of: name)
    }

    /// The database's name.
    public var name: String { DatabaseNames.name(numbered: nameNumber) }

    /// The database's name.
    public var description: String { name }
}

/// The names of the databases opened in this process, each kept once and numbered.
private enum DatabaseNames {
    private static let table = Locked((names: [String](), numbers: [String: UInt32]()))

    static func number(of name: String) -> UInt32 {
        table.withLock { t in
            if let number = t.numbers[name] { return number }
            let number = UInt32(truncatingIfNeeded: t.names.count)
            t.names.append(name)
            t.numbers[name] = number
            return number
        }
    }

    static func name(numbered number: UInt32) -> String {
        table.withLock { t in Int(number) < t.names.count ? t.names[Int(number)] : "" }
    }
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
