/* ref.c - the stable 8-byte form of an ObjectRef: little-endian on every host. */
#include "store.h"

SHOAL_API void shoal_ref_encode(shoal_ref ref, unsigned char out[8])
{
    if (out == NULL) {
        shoal__err(SHOAL_EINVAL, "shoal_ref_encode: out is NULL: pass 8 bytes to write to");
        return;
    }
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)(ref.id >> (8 * i));
}

SHOAL_API shoal_ref shoal_ref_decode(const unsigned char in[8])
{
    if (in == NULL) {
        shoal__err(SHOAL_EINVAL, "shoal_ref_decode: in is NULL: the null ref is returned");
        return SHOAL_REF_NULL;
    }
    uint64_t id = 0;
    for (int i = 0; i < 8; i++)
        id |= (uint64_t)in[i] << (8 * i);
    return (shoal_ref){ id };
}
