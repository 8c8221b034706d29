import LMDB
import Testing

@Suite("LMDB errors")
struct LMDBErrorTests {
    /// LMDB's own codes run from `MDB_KEYEXIST` (−30799) to `MDB_BAD_DBI` (−30780).
    private static let lmdbCodes = Array(Int32(-30799)...(-30780))

    @Test("Every LMDB code has its own MDB_ name and LMDB's message; description is name: message")
    func lmdbNames() {
        var names: Set<String> = []
        for code in Self.lmdbCodes {
            let error = LMDBError(code: code)
            #expect(error.name.hasPrefix("MDB_"), "code \(code) is named \(error.name)")
            #expect(!error.message.isEmpty && !error.message.contains("Unknown"), "code \(code): \(error.message)")
            #expect(error.description == "\(error.name): \(error.message)")
            #expect(!error.message.hasPrefix("MDB_"), "the name is said once: \(error.description)")
            names.insert(error.name)
        }
        #expect(names.count == Self.lmdbCodes.count, "two codes share a name")
        #expect(LMDBError.fault.name == "MDB_FAULT")
        #expect(LMDBError.fault.message.contains("damage"))
    }

    @Test("errno codes keep their symbolic names; others say which number")
    func errnoNames() {
        let expected: [Int32: String] = [
            1: "EPERM", 2: "ENOENT", 5: "EIO", 13: "EACCES", 16: "EBUSY", 17: "EEXIST", 20: "ENOTDIR", 21: "EISDIR",
            22: "EINVAL", 28: "ENOSPC", 30: "EROFS", 32: "EPIPE", 40: "ELOOP",
        ]
        for (code, name) in expected {
            #expect(LMDBError(code: code).name == name)
            #expect(!LMDBError(code: code).message.isEmpty)
        }
        #expect(LMDBError(code: 95).name == "errno 95")
        #expect(LMDBError.noSpace.message.lowercased().contains("space"))
    }

    @Test("Only codes that a damaged or foreign file explains make a store unusable; damage symptoms add three")
    func classification() {
        let unusable: Set<LMDBError> = [.corrupted, .panic, .versionMismatch, .invalidFile, .incompatible, .fault, LMDBError(code: -30797)]
        let symptoms = unusable.union([.cursorFull, .badTransaction, .notFound])
        for code in Self.lmdbCodes + [LMDBError.fault.code, 5, 28, 13] {
            let error = LMDBError(code: code)
            #expect(error.isStoreUnusable == unusable.contains(error), "\(error.name)")
            #expect(error.isDamageSymptom == symptoms.contains(error), "\(error.name)")
        }
    }
}

@Suite("CRC32C")
struct ChecksumTests {
    @Test("CRC32C gives the standard check value, and the table agrees with the CPU instruction on every length")
    func agrees() {
        #expect(Checksum.crc32c(Array("123456789".utf8)) == 0xE306_9283)
        #expect(Checksum.crc32c([]) == 0)
        var generator = SystemRandomNumberGenerator()
        for length in 0..<300 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0 ... 255, using: &generator) }
            let software = bytes.withUnsafeBytes { ~Checksum.softwareUpdate(0xFFFF_FFFF, $0) }
            #expect(software == Checksum.crc32c(bytes), "length \(length)")
        }
        // Which path `crc32c` took here (the comparison is meaningful only with the instruction).
        print("CRC32C instruction: \(Checksum.usesHardware)")
    }

    @Test("CRC32C of two halves (a sealed record's key and payload) is the CRC32C of the whole, split anywhere")
    func halves() {
        var generator = SystemRandomNumberGenerator()
        for length in 0..<40 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0 ... 255, using: &generator) }
            let whole = bytes.withUnsafeBytes { ~Checksum.softwareUpdate(0xFFFF_FFFF, $0) }
            for split in 0...length {
                let pair = bytes.withUnsafeBytes { b in
                    Checksum.crc32c(UnsafeRawBufferPointer(rebasing: b[..<split]), UnsafeRawBufferPointer(rebasing: b[split...]))
                }
                #expect(pair == whole, "length \(length), split at \(split)")
            }
        }
    }
}
