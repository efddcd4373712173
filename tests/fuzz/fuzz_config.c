/* libFuzzer target: any bytes as configuration text.  The loader must never
 * crash, leak or read past the text, whatever libconfig makes of it; a loaded
 * configuration's module settings also go through vf_settings_check so that
 * the JSON conversion and the schema walk see hostile shapes too. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_suppressions(void);

/* libconfig 1.5 (Debian 12) leaks the string token its parser discards on a
 * syntax error such as `"x"` where a name belongs (hyperrealm/libconfig#142,
 * fixed upstream in 1.7.3 by #155).  That leak is the library's, on a refused
 * file only; everything the loader itself allocates is still checked.  The
 * lexer allocates those tokens (and libconfig has no frame pointers to see
 * further up), so the suppression names the two lexer functions. */
const char *__lsan_default_suppressions(void)
{
    return "leak:strbuf_append\nleak:libconfig_yylex\n";
}

static const char *const choices[] = { "a", "b", NULL };

static const struct vf_setting inner[] = {
    { .name = "size", .type = VF_SETTING_SIZE, .default_value = "50G" },
    { .name = "name", .type = VF_SETTING_STRING },
    { 0 },
};

/* One of each type, so any module's settings exercise every checker. */
static const struct vf_setting schema[] = {
    { .name = "b", .type = VF_SETTING_BOOL, .default_value = "false" },
    { .name = "i", .type = VF_SETTING_INT, .default_value = "3", .min = 1, .max = 10 },
    { .name = "s", .type = VF_SETTING_STRING, .choices = choices },
    { .name = "q", .type = VF_SETTING_SIZE, .default_value = "640Mi", .min = 1, .max = 1LL << 40 },
    { .name = "d", .type = VF_SETTING_DURATION, .default_value = "1h30m" },
    { .name = "l", .type = VF_SETTING_STRINGS, .default_value = "x,y" },
    { .name = "g", .type = VF_SETTING_GROUP, .children = inner },
    { 0 },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vf_config_errors errors = { 0 };
    struct vf_config *cfg = NULL;
    char *text = malloc(size + 1);

    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (vf_config_load_string(text, "fuzz.conf", &cfg, &errors) == 0) {
        for (unsigned i = 0; i < cfg->n_modules; i++) {
            struct json_object *out = NULL;
            vf_settings_check(cfg, &cfg->modules[i], schema, &out, &errors);
            json_object_put(out);
        }
    }
    vf_config_free(cfg);
    vf_config_errors_clear(&errors);
    free(text);
    return 0;
}
