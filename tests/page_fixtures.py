"""Pages made by the tests: a rendered page image and its PAGE-XML (2013, 2019) or ALTO (v2, v4) file, written
as plain strings the way Transkribus and eScriptorium write them."""

from PIL import Image, ImageDraw

PAGE_NS = {2013: "http://schema.primaresearch.org/PAGE/gts/pagecontent/2013-07-15",
           2019: "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"}
ALTO_NS = {2: "http://www.loc.gov/standards/alto/ns-v2#", 4: "http://www.loc.gov/standards/alto/ns-v4#"}
GREY = 200  # page background: cut lines show white (255) outside their polygon, grey inside
SIZE = (400, 240)

# (id, text, polygon): the first line's polygon is a trapezoid, so its bounding-box corner lies outside it.
LINES = [("l1", "first line", [(20, 20), (300, 20), (320, 70), (40, 70)]),
         ("l2", "second line", [(20, 90), (320, 90), (320, 140), (20, 140)]),
         ("l3", "third line", [(20, 160), (320, 160), (320, 210), (20, 210)])]


def render_page(path, lines=LINES):
    image = Image.new("L", SIZE, GREY)
    draw = ImageDraw.Draw(image)
    for _, text, polygon in lines:
        draw.text((polygon[0][0] + 30, polygon[0][1] + 15), text, fill=0)
    image.save(path)


def points(polygon):
    return " ".join(f"{x:g},{y:g}" for x, y in polygon)


def page_xml(version=2019, image="page.png", lines=LINES, extra_line=""):
    """Two regions, listed r2 first in ReadingOrder, which puts l2, l3 before l1; l1 has word-level TextEquivs
    and two line TextEquivs (index 1 first) to check that index 0 of the line is read."""
    ns = PAGE_NS[version]
    (id1, text1, poly1), *rest = lines

    def line(id_, text, poly):
        return (f'<TextLine id="{id_}" custom="readingOrder {{index:0;}}"><Coords points="{points(poly)}"/>'
                f'<Baseline points="{poly[3][0]:g},{poly[3][1] - 5:g} {poly[2][0]:g},{poly[2][1] - 5:g}"/>'
                f'<TextEquiv><Unicode>{text}</Unicode></TextEquiv></TextLine>')

    first = (f'<TextLine id="{id1}"><Coords points="{points(poly1)}"/>'
             f'<Word id="{id1}w"><Coords points="{points(poly1)}"/><TextEquiv><Unicode>WORD</Unicode></TextEquiv>'
             f'</Word><TextEquiv index="1"><Unicode>alternative</Unicode></TextEquiv>'
             f'<TextEquiv index="0" conf="0.5"><Unicode>{text1}</Unicode></TextEquiv></TextLine>')
    others = "".join(line(*item) for item in rest)
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<PcGts xmlns="{ns}"><!-- exported by a test --><Metadata><Creator>test</Creator></Metadata>'
            f'<Page imageFilename="{image}" imageWidth="{SIZE[0]}" imageHeight="{SIZE[1]}">'
            f'<ReadingOrder><OrderedGroup id="ro"><RegionRefIndexed index="0" regionRef="r2"/>'
            f'<RegionRefIndexed index="1" regionRef="r1"/></OrderedGroup></ReadingOrder>'
            f'<TextRegion id="r1"><Coords points="0,0 400,0 400,80 0,80"/>{first}</TextRegion>'
            f'<TextRegion id="r2"><Coords points="0,80 400,80 400,240 0,240"/>{others}{extra_line}</TextRegion>'
            f'</Page></PcGts>\n')


def alto_xml(version=4, image="page.png", lines=LINES, polygons=True):
    ns = ALTO_NS[version]
    body = ""
    for id_, text, poly in lines:
        xs, ys = [x for x, _ in poly], [y for _, y in poly]
        rect = f'HPOS="{min(xs):g}" VPOS="{min(ys):g}" WIDTH="{max(xs) - min(xs):g}" HEIGHT="{max(ys) - min(ys):g}"'
        spaced = " ".join(f"{x:g} {y:g}" for x, y in poly)  # ALTO 2/3 write polygons as "x y x y ..."
        shape = f'<Shape><Polygon POINTS="{points(poly) if version == 4 else spaced}"/></Shape>' if polygons else ""
        words = text.split()
        strings = '<SP/>'.join(f'<String CONTENT="{w}" HPOS="{min(xs):g}" VPOS="{min(ys):g}"/>' for w in words)
        body += f'<TextLine ID="{id_}" {rect} BASELINE="{max(ys) - 5:g}">{shape}{strings}</TextLine>'
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<alto xmlns="{ns}"><Description>'
            f'<MeasurementUnit>pixel</MeasurementUnit><sourceImageInformation><fileName>{image}</fileName>'
            f'</sourceImageInformation></Description><Layout><Page ID="p1" WIDTH="{SIZE[0]}" HEIGHT="{SIZE[1]}">'
            f'<PrintSpace><TextBlock ID="b1">{body}</TextBlock></PrintSpace></Page></Layout></alto>\n')


def write_page(folder, name="page", xml=None, image=True, subfolder=""):
    """``folder/name.png`` and its XML (in ``folder/subfolder``: Transkribus keeps PAGE files in ``page/``)."""
    (folder / subfolder).mkdir(parents=True, exist_ok=True)
    if image:
        render_page(folder / f"{name}.png")
    (folder / subfolder / f"{name}.xml").write_text(xml if xml is not None else page_xml(image=f"{name}.png"))
