import Registry

/// Sums of weighted points within a radius of query points on the sphere: the participant
/// demand near a node (location score) and the media nodes near it (coverage score).
///
/// A uniform grid over the unit-sphere embedding with cells as wide as the radius's chord:
/// every point within the radius of a query lies in one of the 27 cells around the query's
/// own, so a query costs the points of those cells, not all N. Sums are taken in a fixed order
/// (cells by coordinates, points in the order given), never in a hash table's iteration order,
/// so equal inputs give bit-identical sums on every replica.
struct Neighbourhood {
    private struct Cell: Hashable {
        var i: Int32, j: Int32, k: Int32
    }

    private let chord2: Double
    private let cellSize: Double
    private var cells: [Cell: [(SpherePosition, Double)]] = [:]

    init(radiusKm: Double, points: [(GeoPoint, Double)]) {
        let chord = SpherePosition.chord(km: radiusKm)
        chord2 = chord * chord
        // Cells no narrower than the chord; a radius near half the globe leaves a handful of cells.
        cellSize = max(chord, 1e-6)
        for (geo, weight) in points {
            let p = SpherePosition(geo)
            cells[cell(of: p), default: []].append((p, weight))
        }
    }

    private func cell(of p: SpherePosition) -> Cell {
        Cell(i: Int32((p.x / cellSize).rounded(.down)), j: Int32((p.y / cellSize).rounded(.down)),
             k: Int32((p.z / cellSize).rounded(.down)))
    }

    /// The count and the weight of the points within the radius of `geo` (inclusive).
    func sum(around geo: GeoPoint) -> (count: Int, weight: Double) {
        let q = SpherePosition(geo)
        let c = cell(of: q)
        var count = 0
        var weight = 0.0
        for di in Int32(-1)...1 {
            for dj in Int32(-1)...1 {
                for dk in Int32(-1)...1 {
                    guard let points = cells[Cell(i: c.i + di, j: c.j + dj, k: c.k + dk)] else { continue }
                    for (p, w) in points where p.chordSquared(to: q) <= chord2 {
                        count += 1
                        weight += w
                    }
                }
            }
        }
        return (count, weight)
    }
}
