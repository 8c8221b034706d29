import Foundation
import IOASIDStore
import IOASIDTestSupport
import Testing

// The library and the CLI share a store (LMDB's multi-process locking). When
// another process's commits grow the data file beyond this process's map, LMDB
// refuses the next transaction with MDB_MAP_RESIZED; the store adopts the new
// size and runs the transaction again, so readers and writers beside the CLI
// never see the error.

@Suite("A map grown by another process")
struct MapGrowthTests {
    /// Opens a new store with a 256 KiB map, then lets the CLI allocate
    /// enough IDs with data to grow the file well beyond it.
    private func grownStore(in dir: TemporaryDirectory, name: String) throws -> (IOASIDStore, SetID, String) {
        let path = dir.child(name)
        var options = IOASIDStore.Options()
        options.mapSize = 256 << 10
        let store = try IOASIDStore(path: path, options: options)
        let set = try store.createSet(token: "vm:grow", quota: 100_000)
        let data = String(repeating: "ab", count: 200)
        let cli = try CLI.run(["--store", path, "alloc", "--set", "\(set.rawValue)", "--count", "5000", "--data", data])
        #expect(cli.status == 0, "\(cli.stderr)")
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path + "/data.mdb")[.size] as? Int)
        #expect(size > 4 * (256 << 10), "the CLI's commits did not grow data.mdb beyond the map (\(size) bytes)")
        return (store, set, path)
    }

    @Test("A read after another process grew the file adopts the new map and sees its commits")
    func readAdopts() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let (store, set, _) = try grownStore(in: dir, name: "store")
        #expect(try store.set(set).allocated == 5000)
        #expect(try store.find(IOASID(5000), in: set).data.count == 200)
        _ = try store.allocate(in: set)
        try expectClean(store)
    }

    @Test("A write after another process grew the file adopts the new map and commits")
    func writeAdopts() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let (store, set, path) = try grownStore(in: dir, name: "store")
        let id = try store.allocate(in: set, data: [1, 2, 3])
        #expect(try store.set(set).allocated == 5001)
        let cli = try CLI.run(["--store", path, "find", "\(id.rawValue)", "--set", "\(set.rawValue)"])
        #expect(cli.status == 0, "\(cli.stderr)")
        try expectClean(store)
    }
}
