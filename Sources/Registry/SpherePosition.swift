/// A position on the unit sphere, for other cores' radius queries (the rewards' location and
/// coverage scores): the same 3-D embedding as the registry's spatial index, where the chord
/// between two points is monotonic in their great-circle distance, so "within R km" is a
/// comparison of squared chords with no trigonometry per pair.
public struct SpherePosition: Hashable, Sendable {
    public let x: Double
    public let y: Double
    public let z: Double

    public init(_ p: GeoPoint) {
        let v = UnitVector(p)
        (x, y, z) = (v.x, v.y, v.z)
    }

    public func chordSquared(to o: SpherePosition) -> Double {
        let dx = x - o.x, dy = y - o.y, dz = z - o.z
        return dx * dx + dy * dy + dz * dz
    }

    /// The great-circle distance in km: `greatCircleKm` of the two points, without the
    /// trigonometry of placing them on the sphere.
    public func km(to o: SpherePosition) -> Double { chordToKm(chordSquared(to: o).squareRoot()) }

    /// The chord of a great-circle distance of `km` (at most the diameter, 2).
    public static func chord(km: Double) -> Double { kmToChord(km) }
}
