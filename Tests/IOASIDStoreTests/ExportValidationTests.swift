import Foundation
import IOASIDStore
import IOASIDTestSupport
import Testing

// What the export validator checks across the whole export rather than line
// by line: a guest ID named twice (checked once every line is in, whatever the
// order of the guests), and the SHA-256 taken a chunk at a time over an export
// larger than one read.

@Suite("Export validation across lines")
struct ExportValidationTests {
    /// A sealed export of ID lines `1…n` with the given guests (nil: none) and data (hex, or "").
    static func export(guests: [UInt32?], data: String = "", token: String = "vm:x") throws -> [UInt8] {
        let header = #"{"count":\#(guests.count),"createdAt":1,"exportID":"01234567-89ab-cdef-0123-456789abcdef","format":"ioasid-set-export","quota":\#(max(guests.count, 1)),"set":2,"sourceStore":"00ff","token":"\#(token)","version":1}"#
        var body = Array(header.utf8) + [0x0a]
        for (index, guest) in guests.enumerated() {
            var fields: [String] = []
            if !data.isEmpty { fields.append(#""data":"\#(data)""#) }
            if let guest { fields.append(#""guest":\#(guest)"#) }
            fields.append(#""id":\#(index + 1)"#)
            body += Array("{\(fields.joined(separator: ","))}\n".utf8)
        }
        let digest = try Hostile.sha256(Data(body))
        return body + Array(#"{"count":\#(guests.count),"end":true,"sha256":"\#(digest)"}"#.utf8) + [0x0a]
    }

    /// The message of the validation error, or nil when the export is valid.
    static func refusal(_ bytes: [UInt8]) -> IOASIDError? {
        do {
            _ = try ExportFormat.validate(bytes)
            return nil
        } catch {
            return error
        }
    }

    @Test("Guest IDs in any order are accepted when each is named once")
    func unorderedGuests() throws {
        #expect(Self.refusal(try Self.export(guests: [9, 3, nil, 7, 1, 0, 4_294_967_295, 2])) == nil)
    }

    @Test(
        "A guest ID named twice is refused, naming the line where a reader meets the first repeat",
        arguments: [
            // guests (lines 2, 3, …), the line and guest the message must name
            ([5, 9, 5] as [UInt32?], 4, 5 as UInt32),
            ([5, 9, 9, 5], 4, 9),  // the first repeat is 9 (line 4), though 5 is smaller
            ([7, nil, 1, 2, 3, 7], 7, 7),  // far apart
            ([4_294_967_295, 0, 4_294_967_295], 4, 4_294_967_295),
            ([0, 0], 3, 0),
        ]
    )
    func repeatedGuest(guests: [UInt32?], line: Int, guest: UInt32) throws {
        let error = try #require(Self.refusal(try Self.export(guests: guests)))
        #expect(error.code == .exportMalformed)
        #expect(error.message == "line \(line): guest ID \(guest) appears twice", "\(error.message)")
    }

    @Test("An import of an export that names a guest ID twice changes nothing")
    func repeatedGuestImport() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = try IOASIDStore(path: dir.child("store"))
        let file = dir.child("export.jsonl")
        try Data(try Self.export(guests: [1, 2, 3, 2])).write(to: URL(fileURLWithPath: file))
        let before = try store.status()
        expectError(.exportMalformed) { try store.importSet(from: file) }
        #expect(try store.status() == before)
        #expect(try store.verify().isClean)
    }

    @Test("An export whose token an older store accepted (a line separator, a bidirectional control) imports, its token kept and shown escaped; a control character is still refused, and so is such a token given anew with the import",
          arguments: ["vm:a\u{2028}b", "vm:\u{202E}cba", "vm:\u{2067}x"])
    func tokenFromBeforeTheRule(token: String) throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = try IOASIDStore(path: dir.child("store"))
        let file = dir.child("export.jsonl")
        try Data(try Self.export(guests: [1, nil], token: token)).write(to: URL(fileURLWithPath: file))
        let before = try store.status()
        expectError(.invalidArgument) { try store.importSet(from: file, token: token) }
        #expect(try store.status() == before, "a token given with the import is new: checked in full")
        let imported = try store.importSet(from: file)
        #expect(try store.set(imported.set).token == token)
        #expect(try store.ids(in: imported.set) == [IOASID(1), IOASID(2)])
        #expect(try store.verify().isClean)
        let shown = try CLI.run(["--store", dir.child("store"), "status"])
        #expect(shown.status == 0 && !shown.stdout.unicodeScalars.contains { ["\u{2028}", "\u{202E}", "\u{2067}"].contains($0) } && shown.stdout.contains("\\u{"),
                "shown escaped: \(shown.stdout)")
        let control = try #require(Self.refusal(try Self.export(guests: [1], token: "vm:\\u001b[2J")))
        #expect(control.code == .exportMalformed)
    }

    @Test("An export larger than one read is hashed whole: a byte changed in any chunk is caught")
    func multiChunkChecksum() throws {
        // 40,000 lines of about 50 bytes: 2 MB, over the validator's 1 MiB reads.
        let bytes = try Self.export(guests: (0..<40_000).map { UInt32($0) }, data: "00112233445566778899")
        #expect(bytes.count > 2 << 20 - 200_000)
        #expect(Self.refusal(bytes) == nil)
        for fraction in [0.01, 0.45, 0.55, 0.99] {
            // Change one data digit (still hex, same length) on a line at `fraction` of the export.
            var changed = bytes
            let start = Int(Double(bytes.count) * fraction)
            let at = try #require(changed[start...].firstIndex(of: UInt8(ascii: "\"")).map { i in
                changed[i...].indices.first { changed[$0...].starts(with: Array(#""data":""#.utf8)) }
            } ?? nil) + 8
            changed[at] = changed[at] == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0")
            #expect(Self.refusal(changed)?.code == .exportChecksumMismatch, "a change at \(fraction) of the export")
        }
    }
}
