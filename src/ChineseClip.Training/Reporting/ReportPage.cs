// One self-contained HTML page with a run's (or a schedule's stages') loss, learning-rate and recall curves as inline
// SVG: no script, no network needed to view it. The line charts are written here: no library served to this project
// renders SVG on a server without a browser engine, and a polyline with two axes is a few lines.
using System.Globalization;
using System.Net;
using System.Text;

namespace ChineseClip.Training.Reporting;

public sealed record ReportSection(string Title, RunMetrics Metrics);

public static class ReportPage
{
    const int Width = 640, Height = 260, Left = 64, Right = 16, Top = 28, Bottom = 36;
    static readonly string[] Colours = ["#2563eb", "#dc2626", "#059669"];

    public static string Html(string title, IReadOnlyList<ReportSection> sections)
    {
        var html = new StringBuilder();
        html.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>").Append(Escape(title)).Append("</title>\n")
            .Append("<style>body{font-family:sans-serif;margin:24px;color:#111}section{margin-bottom:32px}")
            .Append("svg{background:#fafafa;border:1px solid #ddd;margin:6px 6px 0 0}.problem{color:#b45309}</style></head><body>\n")
            .Append("<h1>").Append(Escape(title)).Append("</h1>\n");
        foreach (var section in sections)
        {
            var m = section.Metrics;
            html.Append("<section><h2>").Append(Escape(section.Title)).Append("</h2>\n<p>")
                .Append(Escape(m.Source)).Append(": ").Append(m.Loss.Count).Append(" logged steps, ").Append(m.MeanRecall.Count).Append(" validations");
            if (m.Loss.Count > 0) html.Append(Invariant($", last loss {m.Loss[^1].Y:F4}"));
            if (m.MeanRecall.Count > 0) html.Append(Invariant($", best mean recall {m.MeanRecall.Max(p => p.Y):F2}"));
            html.Append("</p>\n");
            html.Append(Chart("loss", "step", [("loss", m.Loss)]));
            html.Append(Chart("learning rate", "step", [("lr", m.LearningRate)]));
            html.Append(Chart("validation recall (%)", "step", [("mean recall", m.MeanRecall), ("text->image R@1", m.TextToImageR1), ("text->image R@10", m.TextToImageR10)]));
            foreach (string problem in m.Problems) html.Append("<p class=\"problem\">left out: ").Append(Escape(problem)).Append("</p>\n");
            html.Append("</section>\n");
        }
        return html.Append("</body></html>\n").ToString();
    }

    /// <summary>An SVG line chart; each series is a polyline (points in data order), with min/max labels on both axes.</summary>
    public static string Chart(string title, string xLabel, IReadOnlyList<(string Name, IReadOnlyList<CurvePoint> Points)> series)
    {
        var svg = new StringBuilder();
        svg.Append(Invariant($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"{Height}\" viewBox=\"0 0 {Width} {Height}\" role=\"img\" aria-label=\"{Escape(title)}\">\n"));
        svg.Append(Invariant($"<text x=\"{Left}\" y=\"18\" font-size=\"14\">{Escape(title)}</text>\n"));
        var all = series.SelectMany(s => s.Points).Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y)).ToList();
        if (all.Count == 0)
        {
            svg.Append(Invariant($"<text x=\"{Left}\" y=\"{Height / 2}\" font-size=\"13\" fill=\"#666\">nothing logged</text>\n</svg>\n"));
            return svg.ToString();
        }
        double x0 = all.Min(p => p.X), x1 = all.Max(p => p.X), y0 = all.Min(p => p.Y), y1 = all.Max(p => p.Y);
        if (x1 == x0) x1 = x0 + 1;
        if (y1 == y0) { y0 -= 0.5; y1 += 0.5; }
        double plotW = Width - Left - Right, plotH = Height - Top - Bottom;
        double Sx(double x) => Left + (x - x0) / (x1 - x0) * plotW;
        double Sy(double y) => Top + (1 - (y - y0) / (y1 - y0)) * plotH;
        svg.Append(Invariant($"<line x1=\"{Left}\" y1=\"{Top + plotH}\" x2=\"{Left + plotW}\" y2=\"{Top + plotH}\" stroke=\"#999\"/>"))
            .Append(Invariant($"<line x1=\"{Left}\" y1=\"{Top}\" x2=\"{Left}\" y2=\"{Top + plotH}\" stroke=\"#999\"/>\n"));
        svg.Append(Invariant($"<text x=\"{Left - 4}\" y=\"{Top + 4}\" font-size=\"11\" text-anchor=\"end\">{Number(y1)}</text>"))
            .Append(Invariant($"<text x=\"{Left - 4}\" y=\"{Top + plotH}\" font-size=\"11\" text-anchor=\"end\">{Number(y0)}</text>\n"))
            .Append(Invariant($"<text x=\"{Left}\" y=\"{Height - 18}\" font-size=\"11\">{Number(x0)}</text>"))
            .Append(Invariant($"<text x=\"{Left + plotW}\" y=\"{Height - 18}\" font-size=\"11\" text-anchor=\"end\">{Number(x1)}</text>"))
            .Append(Invariant($"<text x=\"{Left + plotW / 2}\" y=\"{Height - 4}\" font-size=\"11\" text-anchor=\"middle\">{Escape(xLabel)}</text>\n"));
        for (int i = 0; i < series.Count; i++)
        {
            var points = series[i].Points.Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y)).ToList();
            if (points.Count == 0) continue;
            string colour = Colours[i % Colours.Length];
            svg.Append(Invariant($"<polyline data-series=\"{Escape(series[i].Name)}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\""))
                .AppendJoin(' ', points.Select(p => Invariant($"{Sx(p.X):F1},{Sy(p.Y):F1}")))
                .Append("\"/>\n");
            svg.Append(Invariant($"<text x=\"{Left + plotW - 4}\" y=\"{Top + 14 + 14 * i}\" font-size=\"11\" text-anchor=\"end\" fill=\"{colour}\">{Escape(series[i].Name)}</text>\n"));
        }
        return svg.Append("</svg>\n").ToString();
    }

    static string Number(double v) => Math.Abs(v) is > 0 and (< 1e-3 or >= 1e5) ? v.ToString("0.##E+0", CultureInfo.InvariantCulture) : v.ToString("0.####", CultureInfo.InvariantCulture);

    static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    static string Escape(string s) => WebUtility.HtmlEncode(s);
}
