import Foundation
import IOASIDStore
import IOASIDTestSupport
import Testing

/// The corruption fuzzer's own checks (`ioasid-worker corrupt-fuzz`): an undamaged
/// copy passes with identical answers, and each failure class is caught when a
/// stand-in for `ioasid` misbehaves on the trial's copy in exactly that way.
@Suite("corrupt-fuzz harness")
struct CorruptFuzzTests {
    /// A small store made through the library: a set, IDs with data and a guest, a
    /// subscriber, a free-pending ID.
    static func makeTemplate(at path: String) throws {
        var options = IOASIDStore.Options()
        options.capacity = 256
        options.systemQuota = 16
        let store = try IOASIDStore(path: path, options: options)
        try store.subscribe("audit")
        let set = try store.createSet(token: "vm:t", quota: 20)
        for i in 0..<5 { _ = try store.allocate(in: set, data: [UInt8(i), 0xAB], guest: i == 2 ? 102 : nil) }
        _ = try store.free(IOASID(3), in: set)
    }

    /// Runs the fuzzer for one trial of `damage` with `ioasid` as the CLI.
    static func fuzz(ioasid: String, dir: TemporaryDirectory, damage: String, extra: [String] = []) throws -> CLI.Result {
        try CLI.run(
            ["corrupt-fuzz", "--ioasid", ioasid, "--template", dir.child("template"), "--dir", dir.child("work"),
             "--trials", "1", "--seed", "1", "--damage", damage] + extra,
            product: "ioasid-worker"
        )
    }

    @Test("an undamaged copy gives the baseline's answers: the harness reports no false failure")
    func undamagedPasses() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try Self.makeTemplate(at: dir.child("template"))
        let result = try Self.fuzz(ioasid: CLI.path(of: "ioasid"), dir: dir, damage: "none")
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("trials=1 pass=1 reported=0 identical=1 crashes=0 hangs=0 silent-wrong=0 read-wrote=0"))
    }

    /// How the stand-in misbehaves when `status` runs on the trial's copy, and what the harness must say.
    static let misbehaviours: [(name: String, body: String, expected: String)] = [
        ("crash", "kill -SEGV $$", "crashes=1"),
        ("hang", "exec sleep 30", "hangs=1"),
        ("write", "\"$REAL\" \"$@\"; rc=$?; printf x >> \"$TRIAL/data.mdb\"; exit $rc", "read-wrote=1"),
        ("wrong answer", "\"$REAL\" \"$@\" | sed 's/\"capacity\":256/\"capacity\":257/'", "silent-wrong=1"),
    ]

    @Test("each failure class is caught", arguments: misbehaviours.indices)
    func failuresAreCaught(_ index: Int) throws {
        let (name, body, expected) = Self.misbehaviours[index]
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try Self.makeTemplate(at: dir.child("template"))
        let trial = dir.child("work") + "/trial"
        let script = """
            #!/bin/sh
            REAL='\(CLI.path(of: "ioasid"))'
            TRIAL='\(trial)'
            case " $* " in
            *" --store $TRIAL --json status "*) ;;
            *) exec "$REAL" "$@" ;;
            esac
            \(body)

            """
        let stand = dir.child("ioasid-standin")
        try script.write(toFile: stand, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: stand)
        let result = try Self.fuzz(ioasid: stand, dir: dir, damage: "none", extra: ["--timeout", "1"])
        #expect(result.status == 2, "\(name): \(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains(expected), "\(name): \(result.stdout)")
        #expect(result.stdout.contains("FAIL trial 0"), "\(name): \(result.stdout)")
    }
}
