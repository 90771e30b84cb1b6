/* json.h - a small JSON reader (RFC 8259 values into a tree) for the tools and the tests
 * that check their files; header-only, no dependencies. Strings are unescaped to UTF-8
 * (\uXXXX below U+0800 and surrogate pairs included); numbers are doubles. Not for hot paths.
 */
#ifndef SHOAL_TOOLS_JSON_H
#define SHOAL_TOOLS_JSON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

typedef struct jval {
    enum jtype t;
    double num;              /* J_NUM; J_BOOL: 0 or 1 */
    char *str;               /* J_STR */
    size_t n;                /* J_ARR, J_OBJ: number of items */
    struct jval *items;      /* J_ARR, J_OBJ: the values */
    char **keys;             /* J_OBJ: the keys, parallel to items */
} jval;

struct jparser {
    const char *p, *end, *base;
    const char *err;         /* first error, NULL while fine */
    size_t at;               /* where it happened: byte offset from base */
    int depth;
};

static inline void json_free(jval *v);

static inline void jp_fail(struct jparser *jp, const char *why)
{
    if (!jp->err) {
        jp->err = why;
        jp->at = (size_t)(jp->p - jp->base);
    }
}

static inline void jp_ws(struct jparser *jp)
{
    while (jp->p < jp->end && (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' || *jp->p == '\r'))
        jp->p++;
}

static inline int jp_hex4(struct jparser *jp, unsigned *out)
{
    if (jp->end - jp->p < 4)
        return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = jp->p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    jp->p += 4;
    *out = v;
    return 0;
}

static inline size_t jp_utf8(unsigned cp, char *o)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xc0 | cp >> 6); o[1] = (char)(0x80 | (cp & 0x3f)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12); o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18); o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* At the opening quote; returns a malloc'd, NUL-terminated string or NULL. */
static inline char *jp_string(struct jparser *jp)
{
    jp->p++;
    const char *s = jp->p;
    while (jp->p < jp->end && *jp->p != '"')
        jp->p += *jp->p == '\\' ? 2 : 1;
    if (jp->p >= jp->end) {
        jp_fail(jp, "unterminated string");
        return NULL;
    }
    const char *e = jp->p;
    char *out = malloc((size_t)(e - s) + 1), *o = out;   /* unescaping never grows it */
    if (!out) {
        jp_fail(jp, "out of memory");
        return NULL;
    }
    jp->p = s;
    while (jp->p < e) {
        unsigned char c = (unsigned char)*jp->p++;
        if (c < 0x20) {
            jp_fail(jp, "control character in string");
            break;
        }
        if (c != '\\') {
            *o++ = (char)c;
            continue;
        }
        char x = *jp->p++;
        switch (x) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (jp_hex4(jp, &cp)) {
                jp_fail(jp, "bad \\u escape");
                goto out;
            }
            if (cp >= 0xd800 && cp < 0xdc00 && e - jp->p >= 6 && jp->p[0] == '\\' &&
                jp->p[1] == 'u') {
                jp->p += 2;
                if (jp_hex4(jp, &lo) || lo < 0xdc00 || lo > 0xdfff) {
                    jp_fail(jp, "bad surrogate pair");
                    goto out;
                }
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            o += jp_utf8(cp, o);
            break;
        }
        default:
            jp_fail(jp, "bad escape");
            goto out;
        }
    }
out:
    *o = 0;
    jp->p = e + 1;
    if (jp->err) {
        free(out);
        return NULL;
    }
    return out;
}

static inline int jp_value(struct jparser *jp, jval *v);

/* Grow a J_ARR/J_OBJ by one item; returns it (zeroed) or NULL. */
static inline jval *jp_push(struct jparser *jp, jval *v, size_t *cap)
{
    if (v->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        jval *ni = realloc(v->items, nc * sizeof *ni);
        if (!ni) {
            jp_fail(jp, "out of memory");
            return NULL;
        }
        v->items = ni;
        if (v->t == J_OBJ) {
            char **nk = realloc(v->keys, nc * sizeof *nk);
            if (!nk) {
                jp_fail(jp, "out of memory");
                return NULL;
            }
            v->keys = nk;
        }
        *cap = nc;
    }
    memset(&v->items[v->n], 0, sizeof v->items[0]);
    return &v->items[v->n];
}

static inline int jp_container(struct jparser *jp, jval *v, char close)
{
    size_t cap = 0;
    jp->p++;
    jp_ws(jp);
    if (jp->p < jp->end && *jp->p == close) {
        jp->p++;
        return 0;
    }
    for (;;) {
        jp_ws(jp);
        char *key = NULL;
        if (v->t == J_OBJ) {
            if (jp->p >= jp->end || *jp->p != '"') {
                jp_fail(jp, "expected a key");
                return -1;
            }
            if (!(key = jp_string(jp)))
                return -1;
            jp_ws(jp);
            if (jp->p >= jp->end || *jp->p != ':') {
                free(key);
                jp_fail(jp, "expected ':'");
                return -1;
            }
            jp->p++;
        }
        jval *item = jp_push(jp, v, &cap);
        if (!item) {
            free(key);
            return -1;
        }
        if (v->t == J_OBJ)
            v->keys[v->n] = key;
        v->n++;
        if (jp_value(jp, item))
            return -1;
        jp_ws(jp);
        if (jp->p < jp->end && *jp->p == ',') {
            jp->p++;
            continue;
        }
        if (jp->p < jp->end && *jp->p == close) {
            jp->p++;
            return 0;
        }
        jp_fail(jp, close == ']' ? "expected ',' or ']'" : "expected ',' or '}'");
        return -1;
    }
}

static inline int jp_value(struct jparser *jp, jval *v)
{
    jp_ws(jp);
    if (jp->p >= jp->end) {
        jp_fail(jp, "unexpected end");
        return -1;
    }
    if (++jp->depth > 512) {
        jp_fail(jp, "nested too deeply");
        return -1;
    }
    int rc = 0;
    char c = *jp->p;
    if (c == '{' || c == '[') {
        v->t = c == '{' ? J_OBJ : J_ARR;
        rc = jp_container(jp, v, c == '{' ? '}' : ']');
    } else if (c == '"') {
        v->t = J_STR;
        rc = (v->str = jp_string(jp)) ? 0 : -1;
    } else if (jp->end - jp->p >= 4 && !memcmp(jp->p, "true", 4)) {
        v->t = J_BOOL, v->num = 1, jp->p += 4;
    } else if (jp->end - jp->p >= 5 && !memcmp(jp->p, "false", 5)) {
        v->t = J_BOOL, v->num = 0, jp->p += 5;
    } else if (jp->end - jp->p >= 4 && !memcmp(jp->p, "null", 4)) {
        v->t = J_NULL, jp->p += 4;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        char buf[64];
        size_t n = 0;
        while (jp->p + n < jp->end && n < sizeof buf - 1 &&
               strchr("+-0123456789.eE", jp->p[n]))
            n++;
        memcpy(buf, jp->p, n);
        buf[n] = 0;
        char *e;
        v->t = J_NUM;
        v->num = strtod(buf, &e);
        if (e != buf + n) {
            jp_fail(jp, "bad number");
            rc = -1;
        }
        jp->p += n;
    } else {
        jp_fail(jp, "unexpected character");
        rc = -1;
    }
    jp->depth--;
    return rc;
}

/* Parse len bytes. Returns a tree to json_free, or NULL with *err (and *offset) set. */
static inline jval *json_parse(const char *text, size_t len, const char **err, size_t *offset)
{
    struct jparser jp = { text, text + len, text, NULL, 0, 0 };
    jval *v = calloc(1, sizeof *v);
    if (!v) {
        *err = "out of memory";
        return NULL;
    }
    if (jp_value(&jp, v) == 0) {
        jp_ws(&jp);
        if (jp.p != jp.end)
            jp_fail(&jp, "trailing characters after the value");
    }
    if (jp.err) {
        if (err)
            *err = jp.err;
        if (offset)
            *offset = jp.at;
        json_free(v);
        return NULL;
    }
    return v;
}

/* Read and parse a whole file; on failure *err says why (a static string). */
static inline jval *json_parse_file(const char *path, const char **err, size_t *offset)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *err = "cannot open the file";
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap)
            break;
        char *nb = realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    if (!buf) {
        fclose(f);
        *err = "out of memory";
        return NULL;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        *err = "read error";
        return NULL;
    }
    jval *v = json_parse(buf, len, err, offset);
    free(buf);
    return v;
}

static inline void json_free_items(jval *v)
{
    if (v->t == J_STR)
        free(v->str);
    if (v->t == J_ARR || v->t == J_OBJ) {
        for (size_t i = 0; i < v->n; i++) {
            json_free_items(&v->items[i]);
            if (v->t == J_OBJ)
                free(v->keys[i]);
        }
        free(v->items);
        free(v->keys);
    }
}

static inline void json_free(jval *v)
{
    if (v) {
        json_free_items(v);
        free(v);
    }
}

/* Member `key` of an object, or NULL (also when v is not an object). */
static inline const jval *json_get(const jval *v, const char *key)
{
    if (!v || v->t != J_OBJ)
        return NULL;
    for (size_t i = 0; i < v->n; i++)
        if (!strcmp(v->keys[i], key))
            return &v->items[i];
    return NULL;
}

/* Conveniences: a member's string or number, or the fallback. */
static inline const char *json_str_of(const jval *v, const char *key, const char *dflt)
{
    const jval *m = json_get(v, key);
    return m && m->t == J_STR ? m->str : dflt;
}
static inline double json_num_of(const jval *v, const char *key, double dflt)
{
    const jval *m = json_get(v, key);
    return m && m->t == J_NUM ? m->num : dflt;
}

#endif
