#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The node's identity on disk: `identity.key` in the data dir, holding a libp2p
/// `PrivateKey` protobuf, mode 0600.
///
/// Loading refuses a file that others can read, or that does not parse: starting with a
/// leaked or damaged identity would be worse than not starting.
public enum KeyFile {
    public static let fileName = "identity.key"

    public enum LoadResult: Sendable {
        case loaded(Ed25519KeyPair)
        case created(Ed25519KeyPair)

        public var keyPair: Ed25519KeyPair {
            switch self {
            case .loaded(let k), .created(let k): return k
            }
        }
    }

    public static func path(inDataDir dir: String) -> String {
        dir.hasSuffix("/") ? dir + fileName : dir + "/" + fileName
    }

    /// Loads the identity from `dir`, creating the directory and a new key if absent.
    public static func loadOrCreate(dataDir dir: String) throws -> LoadResult {
        let path = self.path(inDataDir: dir)
        if let key = try load(path: path) { return .loaded(key) }
        try createDirectory(dir)
        let key = Ed25519KeyPair.generate()
        try write(key, to: path)
        return .created(key)
    }

    /// Loads an existing identity, or returns nil if there is none.
    public static func load(path: String) throws -> Ed25519KeyPair? {
        var st = stat()
        if stat(path, &st) != 0 {
            if errno == ENOENT { return nil }
            throw IdentityError("\(path): cannot stat identity key: \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw IdentityError("\(path) is not a regular file; remove it or point --data-dir elsewhere")
        }
        let mode = st.st_mode & 0o777
        if mode & 0o077 != 0 {
            throw IdentityError(
                "\(path) is readable or writable by others (mode \(String(mode, radix: 8))); "
                    + "the private key may have leaked. If it has not, run `chmod 600 \(path)`; "
                    + "otherwise delete it and run `drtc keygen` to create a new identity")
        }
        let bytes = try readAll(path)
        do {
            return try Ed25519KeyPair(privateKeyProtobuf: bytes)
        } catch {
            throw IdentityError(
                "\(path) is not a valid libp2p Ed25519 private key (\(error)); restore it from a "
                    + "backup, or delete it and run `drtc keygen` to create a new identity (the node's PeerID will change)")
        }
    }

    static func createDirectory(_ dir: String) throws {
        var path = dir.hasPrefix("/") ? "/" : ""
        for component in dir.split(separator: "/") {
            path += (path.isEmpty || path.hasSuffix("/") ? "" : "/") + component
            if mkdir(path, 0o700) != 0 && errno != EEXIST {
                throw IdentityError("cannot create directory \(path): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Writes atomically: a temporary file created 0600, fsynced, then renamed over the target.
    static func write(_ key: Ed25519KeyPair, to path: String) throws {
        let tmp = path + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_EXCL, 0o600)
        guard fd >= 0 else {
            throw IdentityError("cannot create \(tmp): \(String(cString: strerror(errno)))")
        }
        let bytes = key.privateKeyProtobuf
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == bytes.count, synced, rename(tmp, path) == 0 else {
            unlink(tmp)
            throw IdentityError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }

    static func readAll(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw IdentityError("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { throw IdentityError("cannot read \(path): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            out.append(contentsOf: buf[0..<n])
            if out.count > 1 << 16 { throw IdentityError("\(path) is too large to be a key file") }
        }
        return out
    }
}
