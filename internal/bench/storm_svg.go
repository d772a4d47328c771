package bench

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Chart is a line chart with one y axis, written as a self-contained SVG
// file (no script, no external style).
type Chart struct {
	Title, XLabel, YLabel string
	Series                []ChartSeries
	// Width and Height of the image in pixels (800 × 420 when zero).
	Width, Height int
}

// ChartSeries is one line of a chart: points in x order.
type ChartSeries struct {
	Name   string
	Color  string
	Dashed bool
	Points []ChartPoint
}

// ChartPoint is a point in the chart's units.
type ChartPoint struct{ X, Y float64 }

// The plot area's margins, in pixels.
const (
	chartLeft, chartRight, chartTop, chartBottom = 64, 20, 40, 96
)

// WriteSVG writes the chart. Axes start at 0 and end at a round number at
// or above the largest value; a chart without points still gets its axes.
func (c Chart) WriteSVG(w io.Writer) error {
	width, height := c.Width, c.Height
	if width <= 0 {
		width = 800
	}
	if height <= 0 {
		height = 420
	}
	var xmax, ymax float64
	for _, s := range c.Series {
		for _, p := range s.Points {
			xmax, ymax = math.Max(xmax, p.X), math.Max(ymax, p.Y)
		}
	}
	xstep, xend := niceAxis(xmax)
	ystep, yend := niceAxis(ymax)
	pw, ph := float64(width-chartLeft-chartRight), float64(height-chartTop-chartBottom)
	px := func(x float64) float64 { return chartLeft + x/xend*pw }
	py := func(y float64) float64 { return chartTop + ph - y/yend*ph }

	b := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		width, height, width, height)
	p(`<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", width, height)
	p(`<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", chartLeft, svgText(c.Title))
	for i := 0.0; i*ystep <= yend+ystep/2; i++ {
		y := i * ystep
		p(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#e0e0e0"/>`+"\n", svgNum(px(0)), svgNum(py(y)), svgNum(px(xend)), svgNum(py(y)))
		p(`<text x="%s" y="%s" text-anchor="end">%s</text>`+"\n", svgNum(px(0)-6), svgNum(py(y)+4), svgLabel(y))
	}
	for i := 0.0; i*xstep <= xend+xstep/2; i++ {
		x := i * xstep
		p(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#b0b0b0"/>`+"\n", svgNum(px(x)), svgNum(py(0)), svgNum(px(x)), svgNum(py(0)+5))
		p(`<text x="%s" y="%s" text-anchor="middle">%s</text>`+"\n", svgNum(px(x)), svgNum(py(0)+18), svgLabel(x))
	}
	p(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#404040"/>`+"\n", svgNum(px(0)), svgNum(py(0)), svgNum(px(xend)), svgNum(py(0)))
	p(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#404040"/>`+"\n", svgNum(px(0)), svgNum(py(0)), svgNum(px(0)), svgNum(py(yend)))
	p(`<text x="%s" y="%s" text-anchor="middle">%s</text>`+"\n", svgNum(px(xend/2)), svgNum(py(0)+36), svgText(c.XLabel))
	p(`<text x="16" y="%s" text-anchor="middle" transform="rotate(-90 16 %s)">%s</text>`+"\n", svgNum(py(yend/2)), svgNum(py(yend/2)), svgText(c.YLabel))
	for _, s := range c.Series {
		if len(s.Points) == 0 {
			continue
		}
		var pts strings.Builder
		for i, pt := range s.Points {
			if i > 0 {
				pts.WriteByte(' ')
			}
			pts.WriteString(svgNum(px(pt.X)) + "," + svgNum(py(pt.Y)))
		}
		dash := ""
		if s.Dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		p(`<polyline fill="none" stroke="%s" stroke-width="1.5"%s points="%s"/>`+"\n", svgText(s.Color), dash, pts.String())
	}
	// The legend: entries left to right, wrapping onto a second row.
	lx, ly := float64(chartLeft), float64(height-chartBottom)+54
	for _, s := range c.Series {
		w := 30 + 7*float64(len([]rune(s.Name))) + 24
		if lx > chartLeft && lx+w > float64(width-chartRight) {
			lx, ly = chartLeft, ly+18
		}
		dash := ""
		if s.Dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		p(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2"%s/>`+"\n", svgNum(lx), svgNum(ly-4), svgNum(lx+24), svgNum(ly-4), svgText(s.Color), dash)
		p(`<text x="%s" y="%s">%s</text>`+"\n", svgNum(lx+30), svgNum(ly), svgText(s.Name))
		lx += w
	}
	p("</svg>\n")
	return b.Flush()
}

// niceAxis picks a tick step of 1, 2 or 5 times a power of ten giving at
// most about eight ticks, and the axis end: the first tick at or above top.
func niceAxis(top float64) (step, end float64) {
	if top <= 0 {
		return 1, 1
	}
	raw := top / 8
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step = 10 * mag
	for _, m := range []float64{1, 2, 5} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	return step, math.Ceil(top/step-1e-9) * step
}

func svgNum(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

func svgLabel(v float64) string { return strconv.FormatFloat(math.Round(v*1e6)/1e6, 'f', -1, 64) }

func svgText(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s)) // a strings.Builder does not fail
	return b.String()
}

// StormChart is the plot of a storm: the backlog, the ServiceNow requests
// in the minute up to each second (and those of them answered 429), and
// the quota, over the seconds since the first change.
func StormChart(s Storm) Chart {
	var backlog, calls, rejected []ChartPoint
	for _, b := range s.Series.Backlog {
		backlog = append(backlog, ChartPoint{X: b.At.Seconds(), Y: float64(b.Backlog)})
	}
	for i, n := range s.Series.CallsPerMin {
		calls = append(calls, ChartPoint{X: float64(i + 1), Y: float64(n)})
	}
	for i, n := range s.Series.Rejected429PerMin {
		rejected = append(rejected, ChartPoint{X: float64(i + 1), Y: float64(n)})
	}
	end := float64(len(s.Series.CallsPerMin))
	if n := len(backlog); n > 0 {
		end = math.Max(end, backlog[n-1].X)
	}
	q := float64(s.Settings.QuotaPerMin)
	return Chart{
		Title: fmt.Sprintf("Storm: %d changes, quota %d requests/min, %s", s.Changes, s.Settings.QuotaPerMin,
			s.Started.UTC().Format("2006-01-02 15:04 MST")),
		XLabel: "seconds since the first change",
		YLabel: "changes / requests",
		Series: []ChartSeries{
			{Name: "backlog (changes not yet decided)", Color: "#1f77b4", Points: backlog},
			{Name: "ServiceNow requests in the last 60 s", Color: "#d62728", Points: calls},
			{Name: "of them answered 429", Color: "#ff7f0e", Points: rejected},
			{Name: "quota per minute", Color: "#2ca02c", Dashed: true, Points: []ChartPoint{{0, q}, {end, q}}},
		},
	}
}
