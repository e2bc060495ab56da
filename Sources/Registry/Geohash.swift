/// Geohash (base32, Niemeyer 2008): interleaved longitude/latitude bisection. Used as the key
/// prefix of the store's spatial index.
public enum Geohash {
    static let alphabet = Array("0123456789bcdefghjkmnpqrstuvwxyz".utf8)

    public static func encode(_ point: GeoPoint, precision: Int = 6) -> String {
        var latRange = (-90.0, 90.0)
        var lonRange = (-180.0, 180.0)
        var out: [UInt8] = []
        var bits = 0
        var value = 0
        var evenBit = true
        while out.count < precision {
            if evenBit {
                let mid = (lonRange.0 + lonRange.1) / 2
                if point.longitude >= mid { value = value << 1 | 1; lonRange.0 = mid } else { value <<= 1; lonRange.1 = mid }
            } else {
                let mid = (latRange.0 + latRange.1) / 2
                if point.latitude >= mid { value = value << 1 | 1; latRange.0 = mid } else { value <<= 1; latRange.1 = mid }
            }
            evenBit.toggle()
            bits += 1
            if bits == 5 {
                out.append(alphabet[value])
                bits = 0
                value = 0
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
