public enum ReportHTML {
    public static func render(_ r: SimReport, run: RunInfo) -> String {
        "<html><body><pre>\(r.json())</pre></body></html>"
    }
}
