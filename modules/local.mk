# Modules: one shared object per feature, each switchable with --disable-NAME.
MODULE_LINKFLAGS = -module -avoid-version -shared -export-symbols-regex '^virtfleet_module$$'
MODULE_CFLAGS = $(AM_CFLAGS) -fvisibility=hidden

# The example for module authors: built (so its test runs) but never installed.
if BUILD_MODULE_EXAMPLE
noinst_LTLIBRARIES += modules/example/example.la
modules_example_example_la_SOURCES = modules/example/example.c
modules_example_example_la_CFLAGS = $(MODULE_CFLAGS)
# -rpath makes libtool build a shared object for a library that is not installed.
modules_example_example_la_LDFLAGS = $(MODULE_LINKFLAGS) -rpath $(abs_builddir)
modules_example_example_la_LIBADD = $(JSONC_LIBS)
endif
