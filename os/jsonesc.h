/* jsonesc.h - the one JSON string writer of the tree (the timeline, shoal-stat, shoal-topo):
 * RFC 8259 escapes for quotes, backslashes and control characters; valid UTF-8 passes through
 * as is, and each byte that does not start a valid sequence becomes U+FFFD, so that whatever
 * bytes a name holds the output is valid JSON and valid UTF-8. Header-only; cold paths only.
 */
#ifndef SHOAL_OS_JSONESC_H
#define SHOAL_OS_JSONESC_H

#include <stddef.h>
#include <stdio.h>

/* Length of the valid UTF-8 sequence at s (at most n bytes available), or 0 if the bytes
 * there are not one: overlong forms, surrogates and code points above U+10FFFF are not. */
static inline size_t shoal__utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned cp, min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) { len = 2; cp = c & 0x1f; min = 0x80; }
    else if (c >= 0xe0 && c <= 0xef) { len = 3; cp = c & 0x0f; min = 0x800; }
    else if (c >= 0xf0 && c <= 0xf4) { len = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* The bytes s[0..n) as a quoted JSON string (stops early at a NUL). */
static inline void shoal__json_strn(FILE *f, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)(str ? str : "");
    fputc('"', f);
    for (size_t i = 0; i < n && s[i];) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc(c, f);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            switch (c) {
            case '\n': fputs("\\n", f); break;
            case '\t': fputs("\\t", f); break;
            case '\r': fputs("\\r", f); break;
            default: fprintf(f, "\\u%04x", c); break;
            }
            i++;
        } else if (c < 0x80) {
            fputc(c, f);
            i++;
        } else {
            size_t k = shoal__utf8_seq(s + i, n - i);
            if (k == 0) {
                fputs("\\ufffd", f);   /* not UTF-8: replaced, one byte at a time */
                i++;
            } else {
                fwrite(s + i, 1, k, f);
                i += k;
            }
        }
    }
    fputc('"', f);
}

static inline void shoal__json_str(FILE *f, const char *s)
{
    shoal__json_strn(f, s, (size_t)-1);
}

/* The longest prefix of s[0..n) that does not end inside a UTF-8 sequence: where to cut a
 * name that must fit n bytes without leaving half a character. */
static inline size_t shoal__utf8_cut(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = n;
    while (i > 0 && (s[i - 1] & 0xc0) == 0x80 && n - i < 3)
        i--;
    if (i > 0 && s[i - 1] >= 0xc0) {   /* a lead byte: is its sequence whole within n? */
        unsigned c = s[i - 1];
        size_t want = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
        return n - (i - 1) >= want ? n : i - 1;
    }
    return n;
}

#endif
