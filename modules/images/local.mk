# libvfimage: disk image formats parsed by our own code (detection, validation,
# conversion).  A convenience library built with -fPIC so that the images
# module (a shared object) can link it as well as the CLI and the tests.
# VFIMAGE_SOURCES is also compiled into the fuzz target, instrumented.
noinst_LTLIBRARIES += modules/images/libvfimage.la
VFIMAGE_SOURCES = \
	modules/images/formats/image_format.h modules/images/formats/formats_internal.h \
	modules/images/formats/detect.c modules/images/formats/inspect.c \
	modules/images/formats/io.c modules/images/formats/decompress.c \
	modules/images/formats/qcow2.c modules/images/formats/vmdk.c \
	modules/images/formats/vdi.c modules/images/formats/iso.c \
	modules/images/formats/convert.c
modules_images_libvfimage_la_SOURCES = $(VFIMAGE_SOURCES)
modules_images_libvfimage_la_CFLAGS = $(AM_CFLAGS) -fPIC $(ZLIB_CFLAGS) $(LZMA_CFLAGS) $(ZSTD_CFLAGS)
modules_images_libvfimage_la_LIBADD = $(ZLIB_LIBS) $(LZMA_LIBS) $(ZSTD_LIBS)
include modules/images/import/local.mk
include modules/images/module.mk
