import Foundation
import IOASIDCommandLine
import IOASIDTestSupport
import Testing

/// `find-set ID` and `find ID [--set SID]` in their plainest forms run without
/// argument-parser (``QuickLookup``): only the forms argument-parser reads the same
/// way are taken, and they answer exactly as argument-parser's path does.
@Suite("Quick lookups: find-set and find without argument-parser")
struct QuickLookupTests {
    @Test("the plain forms are recognised, with --store and --json before or after the command")
    func recognised() throws {
        let findSet = try #require(QuickLookup(["find-set", "7"]))
        #expect(findSet.lookup == .findSet(7))
        #expect(findSet.store == nil)
        #expect(!findSet.json)
        let options = try #require(QuickLookup(["--store", "/s", "--json", "find-set", "0042"]))
        #expect(options.lookup == .findSet(42))
        #expect(options.store == "/s")
        #expect(options.json)
        let after = try #require(QuickLookup(["find-set", "4294967295", "--store=/a=b", "--json"]))
        #expect(after.lookup == .findSet(4_294_967_295))
        #expect(after.store == "/a=b")
        #expect(QuickLookup(["find", "7"])?.lookup == .find(7, set: nil))
        #expect(QuickLookup(["find", "--set", "2", "7"])?.lookup == .find(7, set: 2))
        #expect(QuickLookup(["find", "7", "--set=2", "--store", "s"])?.lookup == .find(7, set: 2))
    }

    @Test("argument-parser reads every quick form as the same lookup", arguments: [
        ["find-set", "7"], ["--store", "/s", "--json", "find-set", "0042"], ["find-set", "4294967295", "--store=/a=b", "--json"],
        ["--json", "find-set", "0"], ["find", "7"], ["find", "--set", "2", "7"], ["find", "7", "--set=2", "--store", "s"],
        ["--store=x", "find", "--json", "1", "--set", "0"],
    ])
    func sameReading(_ arguments: [String]) {
        #expect(QuickLookup(arguments) != nil)
        #expect(QuickLookup.disagreement(arguments) == nil)
    }

    @Test("anything else goes to argument-parser", arguments: [
        [], ["find-set"], ["find"], ["status"], ["find-set", "1", "2"], ["1", "find-set"],
        ["find-set", "--help"], ["find-set", "-h", "1"], ["help", "find-set"], ["find-set", "1", "--verbose"],
        ["find-set", "--", "1"], ["find-set", "+1"], ["find-set", "-1"], ["find-set", " 1"], ["find-set", "1 "],
        ["find-set", "4294967296"], ["find-set", "00000000001"], ["find-set", "１"], ["find-set", "0x10"],
        ["find-set", "1", "--store"], ["find-set", "1", "--store", ""], ["find-set", "1", "--store="],
        ["find-set", "1", "--store", "-x"], ["find-set", "1", "--store", "a", "--store", "b"],
        ["find-set", "1", "--json", "--json"], ["find-set", "1", "--set", "2"], ["--set", "2", "find", "1"],
        ["find", "1", "--set"], ["find", "1", "--set", "x"], ["find", "1", "--set", "2", "--set", "2"],
        ["find", "--set", "2", "--guest", "101"], ["find", "1", "--socket", "/s"], ["find", "1", "--Store", "s"],
        ["find-set", "--store", "--json", "7"], ["find-set", "7", "--store=-x"], ["find-set", "7", "--store=--json"],
        ["find", "7", "--set="], ["--json", "find-set", "7", "--json"], ["find", "find-set", "7"], ["find-set", "find"],
        ["find-set", "7", "--version"], ["--version"], ["find-set", "7", "-"], ["--store", "find-set", "7"],
    ])
    func refused(_ arguments: [String]) {
        #expect(QuickLookup(arguments) == nil, "\(arguments)")
    }

    @Test("the quick forms print, report and exit as the same lookups through argument-parser")
    func sameAnswers() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = dir.child("store")
        #expect(try CLI.run(["--store", store, "init", "--capacity", "4096"]).status == 0)
        #expect(try CLI.run(["--store", store, "set", "create", "--token", "vm:1", "--quota", "8"]).out == "2")
        #expect(try CLI.run(["--store", store, "alloc", "--set", "2", "--data", "c0ffee", "--guest", "101"]).out == "1")
        #expect(try CLI.run(["--store", store, "alloc", "--set", "2"]).out == "2")
        let plainDirectory = dir.child("not-a-store")
        #expect(mkdir(plainDirectory, 0o700) == 0)

        // Each quick form beside the same lookup with `--` before the ID, which only argument-parser reads.
        let cases: [(quick: [String], parsed: [String], environment: [String: String])] = [
            (["--store", store, "find-set", "1"], ["--store", store, "find-set", "--", "1"], [:]),
            (["find-set", "0002", "--store=\(store)", "--json"], ["find-set", "--store=\(store)", "--json", "--", "0002"], [:]),
            (["find-set", "999", "--store", store], ["find-set", "--store", store, "--", "999"], [:]),
            (["--json", "find-set", "999", "--store", store], ["--json", "find-set", "--store", store, "--", "999"], [:]),
            (["find-set", "0"], ["find-set", "--", "0"], ["IOASID_STORE": store]),
            (["find-set", "1", "--store", dir.child("missing")], ["find-set", "--store", dir.child("missing"), "--", "1"], [:]),
            (["find-set", "1", "--json", "--store", plainDirectory], ["find-set", "--json", "--store", plainDirectory, "--", "1"], [:]),
            (["--store", store, "find", "1"], ["--store", store, "find", "--", "1"], [:]),
            (["find", "1", "--set", "2", "--json"], ["find", "--set", "2", "--json", "--", "1"], ["IOASID_STORE": store]),
            (["find", "2", "--set=3", "--store", store], ["find", "--set=3", "--store", store, "--", "2"], [:]),
            (["find", "--json", "2", "--set", "3", "--store", store], ["find", "--json", "--set", "3", "--store", store, "--", "2"], [:]),
            (["find", "7", "--store", store], ["find", "--store", store, "--", "7"], [:]),
        ]
        for (quick, parsed, environment) in cases {
            #expect(QuickLookup(quick) != nil, "\(quick) is a quick form")
            #expect(QuickLookup(parsed) == nil, "\(parsed) goes to argument-parser")
            let a = try CLI.run(quick, environment: environment)
            let b = try CLI.run(parsed, environment: environment)
            #expect(a.status == b.status, "\(quick): exit \(a.status), argument-parser's \(b.status)")
            #expect(a.stdout == b.stdout, "\(quick)")
            #expect(a.stderr == b.stderr, "\(quick)")
        }
        // And the answers themselves.
        #expect(try CLI.run(["find-set", "1", "--store", store]).stdout == "2\n")
        #expect(try CLI.run(["find-set", "--json", "2", "--store", store]).stdout == #"{"id":2,"set":2}"# + "\n")
        let missing = try CLI.run(["find-set", "999", "--store", store])
        #expect(missing.status == 2)
        #expect(missing.stderr == "ioasid: error: ID 999 is not allocated (noSuchID)\n")
        let wrongSet = try CLI.run(["find", "1", "--set", "3", "--store", store, "--json"])
        #expect(wrongSet.status == 1)
        #expect(wrongSet.stdout.isEmpty)
        #expect(wrongSet.errorCode == "wrongSet")
        let record = try CLI.run(["find", "1", "--store", store, "--json"])
        let object = try #require(record.json as? [String: Any])
        #expect(object["data"] as? String == "c0ffee")
        #expect(object["guest"] as? Int == 101)
    }
}
