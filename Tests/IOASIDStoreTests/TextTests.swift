import Foundation
import IOASIDCommandLine
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The CLI's own string and path helpers (which stand in for Foundation's outside
/// FoundationEssentials): each case is where a plausible hand-rolled version goes wrong.
@Suite("The CLI's text helpers")
struct TextTests {
    @Test("fixed rounds as printf does: on the binary value, halves to even")
    func fixed() {
        #expect(Text.fixed(0.125, places: 2) == "0.12", "0.125 is exact in binary: a half, to even")
        #expect(Text.fixed(0.375, places: 2) == "0.38")
        #expect(Text.fixed(1.005, places: 2) == "1.00", "1.005 is 1.00499… in binary")
        #expect(Text.fixed(2.5, places: 0) == "2")
        #expect(Text.fixed(123.456, places: 1) == "123.5")
        #expect(Text.fixed(0, places: 2) == "0.00")
        #expect(Text.fixed(-1.25, places: 1) == "-1.2")
    }

    @Test("trimmingBlanks drops spaces, tabs and other Unicode blanks at the ends, never line breaks or inner blanks")
    func trimming() {
        #expect(Text.trimmingBlanks(" \t alloc --set 2 \t ") == "alloc --set 2")
        #expect(Text.trimmingBlanks("\u{00A0}x\u{3000}") == "x", "no-break and ideographic spaces are blanks")
        #expect(Text.trimmingBlanks("\nx\n") == "\nx\n", "line breaks stay")
        #expect(Text.trimmingBlanks(" \t ") == "")
        #expect(Text.trimmingBlanks("") == "")
    }

    @Test("expandingTilde expands ~ and ~user at the start only, and leaves an unknown user alone")
    func tilde() throws {
        let home = try #require(getenv("HOME").map { String(cString: $0) })
        #expect(Text.expandingTilde("~") == home)
        #expect(Text.expandingTilde("~/store") == home + "/store")
        let rootHome = try #require(getpwnam("root").map { String(cString: $0.pointee.pw_dir) })
        #expect(Text.expandingTilde("~root/store") == rootHome + "/store")
        #expect(Text.expandingTilde("~no-such-user-9f3a/store") == "~no-such-user-9f3a/store")
        #expect(Text.expandingTilde("/var/~/store") == "/var/~/store")
        #expect(Text.expandingTilde("store~") == "store~")
    }

    @Test("directory(of:) is the path without its last component, as NSString's deletingLastPathComponent")
    func directory() {
        #expect(Text.directory(of: "/usr/local/bin/ioasid") == "/usr/local/bin")
        #expect(Text.directory(of: "/ioasid") == "/")
        #expect(Text.directory(of: "/usr/bin/") == "/usr")
        #expect(Text.directory(of: "/") == "/")
        #expect(Text.directory(of: "bin/ioasid") == "bin")
        #expect(Text.directory(of: "ioasid") == ".")
    }
}
