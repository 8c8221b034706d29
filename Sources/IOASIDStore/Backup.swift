import Foundation
import LMDB

extension IOASIDStore {
    /// Copies a consistent snapshot of the live store into `destination` with
    /// LMDB's copy (`mdb_env_copy2`), optionally compacted; writers may go on
    /// meanwhile. The directory is created (owner-only); it must not exist or be empty.
    ///
    /// - Returns: the size of the copied data file in bytes.
    /// - Throws: ``IOASIDError/Code/invalidArgument`` when `destination` is not empty,
    ///   ``IOASIDError/Code/storageFailure`` when the copy fails.
    @discardableResult
    public func backup(to destination: String, compact: Bool = false) throws(IOASIDError) -> Int {
        let manager = FileManager.default
        var isDirectory: ObjCBool = false
        if manager.fileExists(atPath: destination, isDirectory: &isDirectory) {
            guard isDirectory.boolValue, (try? manager.contentsOfDirectory(atPath: destination))?.isEmpty == true else {
                throw IOASIDError(.invalidArgument, "\(destination) exists and is not an empty directory")
            }
        } else {
            do {
                try manager.createDirectory(atPath: destination, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
            } catch {
                throw IOASIDError(.invalidArgument, "cannot create \(destination): \(error.localizedDescription)")
            }
        }
        do {
            try env.copy(to: destination, compact: compact)
        } catch {
            throw IOASIDError.wrapping(error)
        }
        let data = destination + "/data.mdb"
        _ = chmod(data, 0o600)
        return ((try? manager.attributesOfItem(atPath: data))?[.size] as? Int) ?? 0
    }
}
