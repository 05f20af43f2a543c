package searchparam

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Normalize prepares text for string search: it folds accents on Latin
// letters (é -> e, ß -> ss, Ł -> l), lower-cases, and collapses runs of
// whitespace to one space, trimming both ends. The same function must be
// applied to indexed values and to query values.
func Normalize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		if r < utf8.RuneSelf {
			if 'A' <= r && r <= 'Z' {
				r += 'a' - 'A'
			}
			b.WriteByte(byte(r))
			continue
		}
		if f, ok := fold[r]; ok {
			b.WriteString(f)
			continue
		}
		if unicode.Is(unicode.Mn, r) { // combining marks of decomposed input
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// fold maps precomposed Latin letters to their unaccented lower-case form.
var fold = func() map[rune]string {
	pairs := []string{
		"ÀÁÂÃÄÅàáâãäåĀāĂăĄą", "a", "Ææ", "ae", "ÇçĆćĈĉĊċČč", "c", "ĎďĐđÐð", "d",
		"ÈÉÊËèéêëĒēĔĕĖėĘęĚě", "e", "ĜĝĞğĠġĢģ", "g", "ĤĥĦħ", "h", "ÌÍÎÏìíîïĨĩĪīĬĭĮįİı", "i",
		"Ĳĳ", "ij", "Ĵĵ", "j", "Ķķ", "k", "ĹĺĻļĽľĿŀŁł", "l", "ÑñŃńŅņŇňŉ", "n",
		"ÒÓÔÕÖØòóôõöøŌōŎŏŐő", "o", "Œœ", "oe", "ŔŕŖŗŘř", "r", "ŚśŜŝŞşŠšſ", "s", "ß", "ss",
		"ŢţŤťŦŧ", "t", "Þþ", "th", "ÙÚÛÜùúûüŨũŪūŬŭŮůŰűŲų", "u", "Ŵŵ", "w", "ÝýÿŶŷŸ", "y",
		"ŹźŻżŽž", "z",
	}
	m := map[rune]string{}
	for i := 0; i < len(pairs); i += 2 {
		for _, r := range pairs[i] {
			m[r] = pairs[i+1]
		}
	}
	return m
}()
