import Foundation
import LMDB
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The kind bits of what `lstat` says is at `path`, or `nil`.
private func fileType(_ path: String) -> mode_t? {
    var st = stat()
    return lstat(path, &st) == 0 ? st.st_mode & S_IFMT : nil
}

/// Binds a Unix-domain socket at `path`; returns its descriptor (close it when done).
private func bindSocket(at path: String) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
        close(fd)
        throw POSIXError(.ENAMETOOLONG)
    }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard rc == 0 else {
        let code = errno
        close(fd)
        throw POSIXError(POSIXErrorCode(rawValue: code) ?? .EIO)
    }
    return fd
}

@Suite("Data file: file kinds, paths and system calls")
struct DataFileEdgeTests {
    @Test("data.mdb as a Unix socket is not a regular file (and is not connected to)")
    func socketAsDataFile() throws {
        try withScratchDirectory { root in
            let directory = root + "/socket"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
            let fd = try bindSocket(at: directory + "/data.mdb")
            defer { close(fd) }
            #expect(fileType(directory + "/data.mdb") == S_IFSOCK)
            let error = expectDamage(directory, .notRegularFile)
            #expect(error?.message == "\(directory)/data.mdb is a socket, not a regular file", "\(String(describing: error))")
            #expect(error?.isDamage == true)
            let walked = try PageWalker.check(directory: directory)
            #expect(walked.metaError?.reason == .notRegularFile)
            #expect(walked.problems.map(\.kind) == [.meta])
            #expect(walked.problems.first?.database == .meta)
            #expect(walked.problems.first?.page == nil)
            #expect(walked.problems.first?.description == "meta: \(directory)/data.mdb is a socket, not a regular file")
        }
    }

    @Test("A character device or a block device given as the data file is refused before it is opened")
    func devicesAsDataFile() throws {
        // /dev/null: a character device anyone can name (lstat only; it is never opened).
        let null = try PageWalker.check(dataFile: "/dev/null")
        #expect(null.metaError?.reason == .notRegularFile)
        #expect(null.metaError?.message == "/dev/null is a character device, not a regular file")
        #expect(null.problems.first?.kind == .meta)
        #expect(null.summary == nil && null.pagesRead == 0)

        // A device node inside a store directory, where the process may make one (root, outside a restricted container).
        try withScratchDirectory { root in
            #expect(mknod(root + "/data.mdb", S_IFCHR | 0o600, 0) == 0 || errno == EPERM || errno == EACCES)
            if fileType(root + "/data.mdb") == S_IFCHR {
                let error = expectDamage(root, .notRegularFile)
                #expect(error?.message.hasSuffix("/data.mdb is a character device, not a regular file") == true)
            }
        }

        // A block device, where the system has one.
        guard let block = ["/dev/loop0", "/dev/sda", "/dev/vda", "/dev/nvme0n1", "/dev/xvda"].first(where: { fileType($0) == S_IFBLK }) else {
            return
        }
        let walked = try PageWalker.check(dataFile: block)
        #expect(walked.metaError?.reason == .notRegularFile)
        #expect(walked.metaError?.message == "\(block) is a block device, not a regular file")
    }

    @Test("A directory given with a trailing slash names the same files")
    func trailingSlash() throws {
        try withScratchDirectory { root in
            try makeFixtureStore(at: root + "/store", records: 500)
            guard case .valid(let plain) = try DataFile.inspect(directory: root + "/store"),
                  case .valid(let slashed) = try DataFile.inspect(directory: root + "/store/") else {
                Issue.record("the store is not valid")
                return
            }
            #expect(slashed.path == root + "/store/data.mdb")
            #expect(plain.path == slashed.path)
            #expect(plain.transactionID == slashed.transactionID)
            let walked = try PageWalker.check(directory: root + "/store/")
            #expect(walked.isClean, "\(walked.problems)")
            #expect(walked.path == root + "/store/data.mdb")

            // lock.mdb without data.mdb, named through the slash.
            let lockOnly = root + "/lock-only"
            try FileManager.default.createDirectory(atPath: lockOnly, withIntermediateDirectories: false)
            try FileManager.default.copyItem(atPath: root + "/store/lock.mdb", toPath: lockOnly + "/lock.mdb")
            let missing = expectDamage(lockOnly + "/", .missing)
            #expect(missing?.path == lockOnly + "/data.mdb")
            #expect(missing?.message == "\(lockOnly)/data.mdb is missing but \(lockOnly)/lock.mdb exists: the data file was removed or never written")

            // An empty directory, with a slash: no store.
            try FileManager.default.createDirectory(atPath: root + "/empty", withIntermediateDirectories: false)
            #expect(try DataFile.inspect(directory: root + "/empty/") == .notInitialized)
        }
    }

    @Test("open() failing with ELOOP after lstat saw a file (a link swapped in) is a symbolic link, not an I/O error")
    func linkSwappedInBeforeOpen() throws {
        try withScratchDirectory { root in
            try makeFixtureStore(at: root + "/store", records: 200)
            // stat of the directory, lstat of data.mdb, lstat again, then open.
            let (plan, result) = SyscallFaults.failing(.dataFile, with: ELOOP, skipping: 3) { try DataFile.inspect(directory: root + "/store") }
            #expect(plan.injected == 1)
            guard case .failure(let error as DataFileError) = result else {
                Issue.record("expected a DataFileError, got \(result)")
                return
            }
            #expect(error.reason == .notRegularFile)
            #expect(error.isDamage)
            #expect(error.message == "\(root)/store/data.mdb is a symbolic link, not the data file itself")

            // Any other open failure is an I/O error naming the call.
            let (other, failed) = SyscallFaults.failing(.dataFile, with: EMFILE, skipping: 3) { try DataFile.inspect(directory: root + "/store") }
            #expect(other.injected == 1)
            guard case .failure(let io as DataFileError) = failed else {
                Issue.record("expected a DataFileError, got \(failed)")
                return
            }
            #expect(io.reason == .io)
            #expect(io.errno == EMFILE)
            #expect(!io.isDamage)
        }
    }

    @Test("A read interrupted by a signal (EINTR) is retried, not reported")
    func interruptedReads() throws {
        try withScratchDirectory { root in
            try makeFixtureStore(at: root + "/store", records: 500)
            guard case .valid(let expected) = try DataFile.inspect(directory: root + "/store") else {
                Issue.record("the store is not valid")
                return
            }
            // The first pread (the sixth call), and the first few of the walk.
            let faults = [5, 6, 9, 12].map { SyscallFaults.Fault(.dataFile, errno: EINTR, skip: $0) }
            let (plan, result) = SyscallFaults.failing(faults) { try DataFile.inspect(directory: root + "/store") }
            #expect(plan.injected >= 2)
            guard case .success(.valid(let summary)) = result else {
                Issue.record("expected a valid store, got \(result)")
                return
            }
            #expect(summary == expected)

            let (walkPlan, walked) = SyscallFaults.failing(faults) { try PageWalker.check(directory: root + "/store") }
            #expect(walkPlan.injected == faults.count)
            guard case .success(let report) = walked else {
                Issue.record("the walk failed: \(walked)")
                return
            }
            #expect(report.isClean, "\(report.problems)")
        }
    }

    @Test("A file whose reads end before its stated size is truncated (a short read at the end)")
    func readsEndingEarly() throws {
        // sysfs attributes say 4096 bytes and hold a few: reads end early, as in a file cut short while it is read.
        let candidates = ["/sys/kernel/mm/transparent_hugepage/enabled", "/sys/devices/system/cpu/online",
                          "/sys/kernel/mm/transparent_hugepage/defrag", "/sys/power/state"]
        guard let path = candidates.first(where: { path in
            var st = stat()
            guard lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_size >= 4096,
                  let contents = FileManager.default.contents(atPath: path) else { return false }
            return contents.count < 168
        }) else { return }
        let report = try PageWalker.check(dataFile: path)
        #expect(report.metaError?.reason == .truncated)
        #expect(report.metaError?.message == "\(path) is 4096 bytes, too short to hold meta page 0", "\(String(describing: report.metaError))")
        #expect(report.problems.first?.kind == .meta)
    }
}
